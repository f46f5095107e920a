/**
 * Writes a tiny MaxMind DB (MMDB v2) file: IPv4 only, 24-bit records, each network mapped to
 * `{ country: { iso_code } }`. Just enough of the format (maxmind.github.io/MaxMind-DB) for the
 * tests to give the real `maxmind` reader a database of their own: no writer package ships for Node.
 */

function uint(type: number, value: number): Buffer {
  const bytes: number[] = [];
  for (let v = value; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Buffer.from([(type << 5) | bytes.length, ...bytes]);
}

/** Extended types (uint32 = 6 fits the plain control byte; uint64 and arrays are extended). */
function extended(type: number, size: number): Buffer {
  return Buffer.from([size, type - 7]);
}

function str(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length >= 29) throw new Error('short strings only');
  return Buffer.concat([Buffer.from([(2 << 5) | bytes.length]), bytes]);
}

type Value = string | number | { readonly [key: string]: Value } | readonly Value[];

function encode(value: Value): Buffer {
  if (typeof value === 'string') return str(value);
  if (typeof value === 'number') return uint(6, value);
  if (Array.isArray(value)) return Buffer.concat([extended(11, value.length), ...value.map(encode)]);
  const entries = Object.entries(value as Record<string, Value>);
  return Buffer.concat([Buffer.from([(7 << 5) | entries.length]), ...entries.flatMap(([k, v]) => [str(k), encode(v)])]);
}

/** `networks`: CIDR (IPv4) → ISO country code. */
export function buildCountryMmdb(networks: Readonly<Record<string, string>>): Buffer {
  // The tree: node i has two records, each a node index, EMPTY, or a data offset.
  const EMPTY = -1;
  const nodes: [number, number][] = [[EMPTY, EMPTY]];
  const data: Buffer[] = [];
  const dataOffsets: number[] = [];
  let dataSize = 0;
  const leaves: { node: number; side: 0 | 1; data: number }[] = [];
  for (const [cidr, country] of Object.entries(networks)) {
    const [ip, bitsText] = cidr.split('/') as [string, string];
    const bits = Number(bitsText);
    const address = ip.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
    const record = encode({ country: { iso_code: country } });
    dataOffsets.push(dataSize);
    data.push(record);
    dataSize += record.length;
    let node = 0;
    for (let depth = 0; depth < bits; depth++) {
      const side = (Math.floor(address / 2 ** (31 - depth)) % 2) as 0 | 1;
      if (depth === bits - 1) {
        leaves.push({ node, side, data: dataOffsets.length - 1 });
        break;
      }
      let next = nodes[node]![side];
      if (next === EMPTY) {
        next = nodes.length;
        nodes.push([EMPTY, EMPTY]);
        nodes[node]![side] = next;
      }
      node = next;
    }
  }
  const count = nodes.length;
  for (const leaf of leaves) nodes[leaf.node]![leaf.side] = -2 - leaf.data;
  const tree = Buffer.alloc(count * 6);
  nodes.forEach((pair, i) => {
    pair.forEach((record, side) => {
      const value = record === EMPTY ? count : record <= -2 ? count + 16 + dataOffsets[-2 - record]! : record;
      tree.writeUIntBE(value, i * 6 + side * 3, 3);
    });
  });
  const metadata = encode({
    node_count: count,
    record_size: 24,
    ip_version: 4,
    database_type: 'Test-Country',
    languages: ['en'],
    binary_format_major_version: 2,
    binary_format_minor_version: 0,
    build_epoch: 1_700_000_000,
    description: { en: 'test' },
  });
  return Buffer.concat([tree, Buffer.alloc(16), ...data, Buffer.from('\xAB\xCD\xEFMaxMind.com', 'latin1'), metadata]);
}
