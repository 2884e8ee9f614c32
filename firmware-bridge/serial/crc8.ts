/**
 * CRC-8 with polynomial 0x07, initial value 0, no reflection, no final XOR (the catalogue's
 * CRC-8/SMBUS; check value 0xF4 for "123456789"). A 256-byte table is cheap on any MCU.
 */
export function crc8(text: string): number {
  let crc = 0;
  for (let i = 0; i < text.length; i++) {
    crc ^= text.charCodeAt(i) & 0xff;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
  }
  return crc;
}

export function crc8Hex(text: string): string {
  return crc8(text).toString(16).toUpperCase().padStart(2, '0');
}
