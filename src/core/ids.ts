/** Account and transaction identifiers: 1–64 characters of [A-Za-z0-9_.:-] (a UUID fits). */
export const ID_BYTES_MAX = 64;
/** An id as regular-expression source, unanchored, for patterns that embed it (JSON Schemas). */
export const ID_SOURCE = '[A-Za-z0-9_.:-]{1,64}';
export const ID_PATTERN_SOURCE = `^${ID_SOURCE}$`;
const ID_PATTERN = new RegExp(ID_PATTERN_SOURCE);

export function isValidId(value: unknown): value is string {
  return typeof value === 'string' && ID_PATTERN.test(value);
}

/** External account ids start with '@', which no customer id may contain. */
export function isExternalId(value: string): boolean {
  return value.startsWith('@external:');
}

/** Byte-level check for ids arriving in binary records: same alphabet as ID_PATTERN. */
export function isIdByte(byte: number): boolean {
  return (
    (byte >= 0x30 && byte <= 0x39) || // 0-9
    (byte >= 0x41 && byte <= 0x5a) || // A-Z
    (byte >= 0x61 && byte <= 0x7a) || // a-z
    byte === 0x5f || // _
    byte === 0x2e || // .
    byte === 0x3a || // :
    byte === 0x2d // -
  );
}
