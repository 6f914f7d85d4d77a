// IPv4 ranges in CIDR notation, as the Service ranges weft captures are given (weft init
// --service-cidr, the cluster's ServiceCIDRs).

/** An IPv4 range in CIDR notation, its address on the range's boundary. */
export function isIpv4Cidr(text: string): boolean {
  const range = ipv4Range(text);
  return range !== null && range.first % range.size === 0;
}

/** Whether `address` (dotted IPv4) is in `cidr`; false for anything else. */
export function inIpv4Cidr(address: string, cidr: string): boolean {
  const range = ipv4Range(cidr);
  const at = ipv4Value(address);
  if (range === null || at === null) return false;
  const base = range.first - (range.first % range.size);
  return at >= base && at < base + range.size;
}

function ipv4Range(cidr: string): { first: number; size: number } | null {
  const [address, bits, ...rest] = cidr.split("/");
  const first = ipv4Value(address ?? "");
  if (first === null || rest.length > 0 || !/^\d{1,2}$/.test(bits ?? "") || Number(bits) > 32) return null;
  return { first, size: 2 ** (32 - Number(bits)) };
}

function ipv4Value(text: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return null;
  const octets = m.slice(1, 5).map(Number);
  return octets.some((o) => o > 255) ? null : octets.reduce((a, o) => a * 256 + o, 0);
}
