import { type AuthorityRewriter } from '@berth/native';

/**
 * The client-to-server half of an HTTP/2 connection (RFC 9113), read frame
 * by frame so that its header blocks can be re-encoded by an
 * {@link AuthorityRewriter} and one SETTINGS acknowledgement can be taken
 * out. Everything else passes through byte for byte: DATA and the other
 * frames are forwarded as they arrive, even part of a frame at a time.
 *
 * It enforces only what it must to stay in step (a header block is one
 * HEADERS then CONTINUATIONs of the same stream, nothing in between, padding
 * no longer than the frame); anything else malformed is passed on for the
 * server's own HTTP/2 checks to refuse.
 */

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const FRAME_HEADER_BYTES = 9;
const HEADERS = 0x1;
const SETTINGS = 0x4;
const CONTINUATION = 0x9;
const FLAG_ACK = 0x1;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
/** A frame payload HTTP/2 lets every peer send (SETTINGS_MAX_FRAME_SIZE's initial value). */
const MAX_PAYLOAD = 16_384;
/** The most a header block may take encoded before it is refused. */
const MAX_BLOCK_BYTES = 256 * 1024;

/** Ways the client broke HTTP/2 that leave the relay unable to go on; the connection is dropped. */
export class ClientProtocolError extends Error {
  override readonly name = 'ClientProtocolError';
}

interface OpenBlock {
  streamId: number;
  /** END_STREAM and PRIORITY as the HEADERS frame had them. */
  flags: number;
  priority: Buffer | undefined;
  fragments: Buffer[];
  bytes: number;
  /** The frames as the client sent them (kept while {@link ClientFrames.original} is). */
  raw: Buffer[];
}

interface FrameHeader {
  length: number;
  type: number;
  flags: number;
  streamId: number;
}

function frameHeader(type: number, flags: number, streamId: number, length: number): Buffer {
  const h = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  h.writeUIntBE(length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId, 5);
  return h;
}

/** A header block as HEADERS then CONTINUATION frames no larger than any peer accepts. */
function headerFrames(block: OpenBlock, encoded: Buffer): Buffer[] {
  const frames: Buffer[] = [];
  const first = block.priority === undefined ? encoded.subarray(0, MAX_PAYLOAD) : Buffer.concat([block.priority, encoded.subarray(0, MAX_PAYLOAD - 5)]);
  let at = first.length - (block.priority === undefined ? 0 : 5);
  const last = (): number => (at >= encoded.length ? FLAG_END_HEADERS : 0);
  frames.push(frameHeader(HEADERS, block.flags | last(), block.streamId, first.length), first);
  while (at < encoded.length) {
    const piece = encoded.subarray(at, at + MAX_PAYLOAD);
    at += piece.length;
    frames.push(frameHeader(CONTINUATION, last(), block.streamId, piece.length), piece);
  }
  return frames;
}

export class ClientFrames {
  private pending: Buffer = Buffer.alloc(0);
  private prefaceLeft = PREFACE.length;
  /** Set when the connection does not open with HTTP/2's preface: then nothing is touched. */
  private opaque = false;
  /** Payload bytes of the current pass-through frame still to come. */
  private passthrough = 0;
  private block: OpenBlock | undefined;
  private ackToDrop: boolean;
  /** Header blocks seen, and whether one had its authority replaced. */
  blocks = 0;
  replaced = false;
  /**
   * While set, the same output with every header frame as the client sent
   * it: what the server must see instead if it is to read the connection
   * itself from here on. Cleared with {@link stopKeepingOriginal}.
   */
  original: Buffer[] | undefined;

  /**
   * `dropAck`: take out the client's first SETTINGS acknowledgement, which
   * answers a SETTINGS frame the relay sent itself, not the server's.
   * `keepOriginal`: also collect {@link original}.
   */
  constructor(
    private readonly rewriter: AuthorityRewriter,
    options: { dropAck: boolean; keepOriginal: boolean },
  ) {
    this.ackToDrop = options.dropAck;
    this.original = options.keepOriginal ? [] : undefined;
  }

  /** Whether the acknowledgement to drop has been seen (and dropped). */
  get ackDropped(): boolean {
    return !this.ackToDrop;
  }

  /** True when the connection did not start with the HTTP/2 preface. */
  get notHttp2(): boolean {
    return this.opaque;
  }

  stopKeepingOriginal(): Buffer[] {
    const kept = this.original ?? [];
    this.original = undefined;
    return kept;
  }

  /** Bytes received but not yet parsed (part of a frame header or header frame). */
  unparsed(): Buffer {
    return this.pending;
  }

  /** Takes the client's next bytes; returns what the server is to read. Throws {@link ClientProtocolError}. */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (buf.length > 0) {
      const used = this.step(buf, out);
      if (used === 0) break;
      buf = buf.subarray(used);
    }
    this.pending = buf.length === 0 ? Buffer.alloc(0) : Buffer.from(buf);
    return out;
  }

  /** Consumes what it can from the front of `buf`; 0 when it needs more bytes. */
  private step(buf: Buffer, out: Buffer[]): number {
    if (this.opaque) return this.emit(out, buf);
    if (this.prefaceLeft > 0) return this.preface(buf, out);
    if (this.passthrough > 0) {
      const piece = buf.subarray(0, this.passthrough);
      this.passthrough -= piece.length;
      return this.emit(out, piece);
    }
    if (buf.length < FRAME_HEADER_BYTES) return 0;
    const h: FrameHeader = { length: buf.readUIntBE(0, 3), type: buf[3]!, flags: buf[4]!, streamId: buf.readUInt32BE(5) & 0x7fffffff };
    if (this.block !== undefined || h.type === HEADERS) return this.headerFrame(buf, h, out);
    if (h.type === SETTINGS && (h.flags & FLAG_ACK) !== 0 && h.length === 0 && this.ackToDrop) {
      this.ackToDrop = false;
      return FRAME_HEADER_BYTES;
    }
    this.passthrough = h.length;
    return this.emit(out, buf.subarray(0, FRAME_HEADER_BYTES));
  }

  private emit(out: Buffer[], bytes: Buffer): number {
    out.push(bytes);
    this.original?.push(bytes);
    return bytes.length;
  }

  private preface(buf: Buffer, out: Buffer[]): number {
    const at = PREFACE.length - this.prefaceLeft;
    const piece = buf.subarray(0, this.prefaceLeft);
    if (!piece.equals(PREFACE.subarray(at, at + piece.length))) {
      this.opaque = true;
      return this.emit(out, buf);
    }
    this.prefaceLeft -= piece.length;
    return this.emit(out, piece);
  }

  private headerFrame(buf: Buffer, h: FrameHeader, out: Buffer[]): number {
    if (this.block !== undefined && (h.type !== CONTINUATION || h.streamId !== this.block.streamId)) {
      throw new ClientProtocolError('a header block was interrupted by another frame');
    }
    const size = FRAME_HEADER_BYTES + h.length;
    if (h.length > MAX_BLOCK_BYTES) throw new ClientProtocolError('a header frame is too large');
    if (buf.length < size) return 0;
    const frame = Buffer.from(buf.subarray(0, size));
    const payload = frame.subarray(FRAME_HEADER_BYTES);
    if (this.block === undefined) this.block = this.open(h, payload);
    else this.block.fragments.push(payload);
    const block = this.block;
    block.bytes += block.fragments.at(-1)!.length;
    if (this.original !== undefined) block.raw.push(frame);
    if (block.bytes > MAX_BLOCK_BYTES) throw new ClientProtocolError('a header block is too large');
    if ((h.flags & FLAG_END_HEADERS) !== 0) this.close(block, out);
    return size;
  }

  /** A new block from a HEADERS frame: its fragment without padding and priority. */
  private open(h: FrameHeader, payload: Buffer): OpenBlock {
    let start = 0;
    let padding = 0;
    if ((h.flags & FLAG_PADDED) !== 0) {
      if (payload.length < 1) throw new ClientProtocolError('a padded HEADERS frame has no pad length');
      padding = payload[0]!;
      start = 1;
    }
    const priority = (h.flags & FLAG_PRIORITY) !== 0 ? payload.subarray(start, start + 5) : undefined;
    if (priority !== undefined) start += 5;
    if (start + padding > payload.length) throw new ClientProtocolError('a HEADERS frame has more padding than payload');
    const fragment = payload.subarray(start, payload.length - padding);
    return { streamId: h.streamId, flags: h.flags & (FLAG_END_STREAM | FLAG_PRIORITY), priority, fragments: [fragment], bytes: 0, raw: [] };
  }

  private close(block: OpenBlock, out: Buffer[]): void {
    this.block = undefined;
    let result;
    try {
      result = this.rewriter.rewrite(block.fragments.length === 1 ? block.fragments[0]! : Buffer.concat(block.fragments));
    } catch (err) {
      throw new ClientProtocolError(err instanceof Error ? err.message : String(err), { cause: err });
    }
    this.blocks++;
    if (result.replaced) this.replaced = true;
    out.push(...headerFrames(block, result.block));
    this.original?.push(...block.raw);
  }
}
