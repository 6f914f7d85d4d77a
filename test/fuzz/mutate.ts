// Input mutations: libFuzzer-style byte edits stacked a few at a time (flips, inserts,
// deletes, copies, dictionary tokens, splices with other corpus entries), and for JSON
// targets edits of the parsed tree, so that mutants stay JSON often enough to get past
// JSON.parse and into the schema behind it.

/** xorshift32: fast, and the same run for the same --seed. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (this.state = x >>> 0);
  }
  /** An integer in [0, n). */
  below(n: number): number {
    return n <= 0 ? 0 : this.next() % n;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)];
  }
}

export interface MutationSource {
  rng: Rng;
  dictionary: readonly Uint8Array[];
  /** Another corpus entry, for splicing. */
  other(): Uint8Array;
  maxLength: number;
  json: boolean;
}

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0x0d, 0x0a, 0x20, 0x09, 0x3a, 0x30, 0x00, 0x40, 0x41, 0x0b, 0x7b, 0x22, 0x5c];

function splice(a: Uint8Array, at: number, remove: number, insert: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(a.length - remove + insert.length);
  out.set(a.subarray(0, at));
  out.set(insert, at);
  out.set(a.subarray(at + remove), at + insert.length);
  return out;
}

function randomBytes(rng: Rng, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.below(3) === 0 ? rng.pick(INTERESTING) : rng.below(256);
  return out;
}

/** One byte-level edit. */
function edit(a: Uint8Array, s: MutationSource): Uint8Array {
  const { rng } = s;
  const at = rng.below(a.length + 1);
  const span = () => 1 + rng.below(Math.min(a.length - at, 1 + rng.below(32)) || 1);
  switch (rng.below(a.length === 0 ? 3 : 11)) {
    case 0:
      return splice(a, at, 0, randomBytes(rng, 1 + rng.below(8)));
    case 1:
      return s.dictionary.length ? splice(a, at, 0, rng.pick(s.dictionary)) : a;
    case 2: {
      // Splice: this input up to a point, another from a point.
      const b = s.other();
      const from = rng.below(b.length + 1);
      return rng.below(2) ? splice(a, at, a.length - at, b.subarray(from)) : splice(a, at, 0, b.subarray(from, from + 1 + rng.below(64)));
    }
    case 3: {
      const out = a.slice();
      out[Math.min(at, a.length - 1)] ^= 1 << rng.below(8);
      return out;
    }
    case 4: {
      const out = a.slice();
      out[Math.min(at, a.length - 1)] = rng.pick(INTERESTING);
      return out;
    }
    case 5: {
      const out = a.slice();
      out[Math.min(at, a.length - 1)] += rng.below(35) - 17;
      return out;
    }
    case 6:
      return at < a.length ? splice(a, at, span()) : a;
    case 7: {
      // Copy a chunk of the input somewhere else in it.
      const from = rng.below(a.length);
      return splice(a, at, 0, a.slice(from, from + 1 + rng.below(Math.min(64, a.length - from))));
    }
    case 8: {
      if (!s.dictionary.length || at >= a.length) return a;
      const token = rng.pick(s.dictionary);
      return splice(a, at, Math.min(token.length, a.length - at), token);
    }
    case 9: {
      // Overwrite a span with bytes from elsewhere in the input.
      const from = rng.below(a.length);
      const chunk = a.slice(from, from + span());
      return splice(a, at, Math.min(chunk.length, a.length - at), chunk);
    }
    default: {
      // Swap two adjacent spans: reorders fields, lines, sections.
      if (at >= a.length) return a;
      const first = span();
      const rest = a.length - at - first;
      if (rest <= 0) return a;
      const second = 1 + rng.below(Math.min(rest, 64));
      return splice(a, at, first + second, new Uint8Array([...a.subarray(at + first, at + first + second), ...a.subarray(at, at + first)]));
    }
  }
}

// Values JSON.stringify cannot produce, spliced in as text after the tree is serialized.
const RAW = "\u0000raw\u0000";
const RAW_VALUES = [
  "1e400",
  "-1e400",
  "-0",
  "1e-400",
  "9007199254740993",
  "2147483648",
  "4294967296",
  "0.1",
  "-1",
  "1E2",
  '"\\ud800"',
  '"\\u0000"',
  '"\\u010d\\u010a"',
  '"\\r\\n"',
];

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Every container in `value` with the key of each of its members. */
function members(
  value: Json,
  into: [Json[] | { [key: string]: Json }, string | number][] = [],
): [Json[] | { [key: string]: Json }, string | number][] {
  if (Array.isArray(value)) value.forEach((v, i) => (into.push([value, i]), members(v, into)));
  else if (value && typeof value === "object") for (const k of Object.keys(value)) into.push([value, k]), members(value[k], into);
  return into;
}

function randomValue(s: MutationSource, donors: Json[]): Json {
  const { rng } = s;
  switch (rng.below(8)) {
    case 0:
      return rng.pick([null, true, false, 0, 1, -1, 0.5, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 53, "", "a", "*", "/", {}, []]);
    case 1:
      return RAW;
    case 2:
      return "x".repeat(rng.below(2) ? 64 : 5000);
    case 3:
      return new TextDecoder().decode(randomBytes(rng, 1 + rng.below(12)));
    default: {
      // A subtree from this document or another corpus entry.
      const donor = rng.pick(donors);
      const found = members(donor);
      if (found.length === 0) return donor;
      const [container, key] = rng.pick(found);
      return structuredClone((container as Record<string | number, Json>)[key]);
    }
  }
}

function parseJson(data: Uint8Array): Json | undefined {
  try {
    return JSON.parse(new TextDecoder().decode(data)) as Json;
  } catch {
    return undefined;
  }
}

/** One edit of the JSON tree, or undefined when the input is not JSON. */
function editJson(data: Uint8Array, s: MutationSource): Uint8Array | undefined {
  const root = parseJson(data);
  if (root === undefined) return undefined;
  const { rng } = s;
  const other = parseJson(s.other());
  const donors = other === undefined ? [root] : [root, other];
  const found = members(root);
  // Now and then the whole document: a body may be null, a number, a list.
  if (found.length === 0 || rng.below(32) === 0) return new TextEncoder().encode(JSON.stringify(randomValue(s, donors)));
  const [container, key] = rng.pick(found);
  const record = container as Record<string | number, Json>;
  switch (rng.below(5)) {
    case 0:
      if (Array.isArray(container)) container.splice(key as number, 1);
      else delete record[key];
      break;
    case 1:
      if (Array.isArray(container)) container.splice(key as number, 0, structuredClone(container[key as number]));
      else record[`${key}`.slice(0, -1) || "x"] = structuredClone(record[key]);
      break;
    case 2: {
      // A field from the dictionary, when it is a JSON string, with any value.
      const names = s.dictionary.map((t) => parseJson(t)).filter((t): t is string => typeof t === "string");
      const target = Array.isArray(container)
        ? record[key] && typeof record[key] === "object" && !Array.isArray(record[key])
          ? (record[key] as Record<string, Json>)
          : null
        : record;
      if (target && names.length) target[rng.pick(names)] = randomValue(s, donors);
      else record[key] = randomValue(s, donors);
      break;
    }
    default:
      record[key] = randomValue(s, donors);
  }
  const text = JSON.stringify(root).replace(JSON.stringify(RAW), () => rng.pick(RAW_VALUES));
  return new TextEncoder().encode(text);
}

/** A mutant of `input`: a JSON edit (JSON targets, half the time) and/or one to five byte edits. */
export function mutate(input: Uint8Array, s: MutationSource): Uint8Array {
  let out = input;
  const structured = s.json && s.rng.below(2) === 0 ? editJson(input, s) : undefined;
  if (structured) out = structured;
  if (!structured || s.rng.below(4) === 0) {
    for (let n = 1 + s.rng.below(5); n > 0; n--) out = edit(out, s);
  }
  return out.length > s.maxLength ? out.subarray(0, s.maxLength) : out;
}
