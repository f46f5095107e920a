/**
 * Redis Cluster's key → slot rule, written out from the cluster specification so a test can check
 * hash-tagging on a server that is not a cluster (CLUSTER KEYSLOT is refused there): the slot is
 * CRC16-XMODEM of the hash tag mod 16384, the tag being what lies between the first `{` and the
 * first `}` after it when that is not empty, else the whole key.
 */

export function hashTagOf(key: string): string {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  if (close === -1 || close === open + 1) return key;
  return key.slice(open + 1, close);
}

function crc16(data: Buffer): number {
  let crc = 0;
  for (const byte of data) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

export function keySlot(key: string): number {
  return crc16(Buffer.from(hashTagOf(key), 'utf8')) % 16_384;
}
