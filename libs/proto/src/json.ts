/**
 * JSON text of a message or any value that holds generated types: their
 * int64 fields are bigints, which JSON.stringify refuses; they become
 * decimal strings (as the protobuf JSON mapping writes int64).
 */
export function toJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), indent);
}
