// A protobuf wire codec of a few lines, written from the protobuf encoding
// rules alone. The e2e tests use it as a "generic" CRI client that shares no
// code with Berth's generated types: field numbers come from the upstream
// runtime.v1 api.proto (VersionRequest.version = 1; VersionResponse.version = 1,
// runtime_name = 2, runtime_version = 3, runtime_api_version = 4).

export function encodeStringField(field: number, value: string): Buffer {
  const bytes = Buffer.from(value);
  return Buffer.concat([varint((field << 3) | 2), varint(bytes.length), bytes]);
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

/** Decodes the length-delimited fields of a message (other wire types are skipped). */
export function decodeStringFields(buf: Buffer): Map<number, string> {
  const fields = new Map<number, string>();
  let i = 0;
  const readVarint = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = buf[i++];
      if (b === undefined) throw new Error('truncated varint');
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
    }
  };
  while (i < buf.length) {
    const key = readVarint();
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 2) {
      const len = readVarint();
      fields.set(field, buf.subarray(i, i + len).toString());
      i += len;
    } else if (wire === 0) readVarint();
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else throw new Error(`unexpected wire type ${wire}`);
  }
  return fields;
}
