// A small YAML emitter for generated manifests: deterministic (keys in insertion order) and
// conservative. A string is written plain only when YAML can read it back as nothing but that
// string; otherwise it is written as a JSON string, which is a valid YAML double-quoted scalar.
const PLAIN = /^[A-Za-z][A-Za-z0-9 _.,;()/'+=<>-]*$/;
// YAML 1.1 readers (and so some tools) take these as booleans or null
const RESERVED = /^(y|yes|n|no|true|false|on|off|null)$/i;

function scalar(x: unknown): string {
  if (x === null) return "null";
  if (typeof x === "string") return PLAIN.test(x) && !x.endsWith(" ") && !RESERVED.test(x) ? x : JSON.stringify(x);
  if (typeof x === "boolean" || (typeof x === "number" && Number.isFinite(x))) return String(x);
  throw new TypeError(`cannot write ${String(x)} (${typeof x}) as YAML: only JSON values can be written`);
}

const isBlock = (x: unknown): x is object => typeof x === "object" && x !== null && Object.keys(x).length > 0;

function inline(x: unknown): string {
  if (Array.isArray(x)) return "[]";
  if (typeof x === "object" && x !== null) return "{}";
  return scalar(x);
}

function lines(value: object, indent: number): string[] {
  const pad = " ".repeat(indent);
  const out: string[] = [];
  if (Array.isArray(value)) {
    for (const item of value) {
      if (!isBlock(item)) {
        out.push(`${pad}- ${inline(item)}`);
        continue;
      }
      // the item's first line goes on the dash line: "- key: value"
      const inner = lines(item, indent + 2);
      out.push(`${pad}- ${inner[0].slice(indent + 2)}`, ...inner.slice(1));
    }
    return out;
  }
  for (const [key, item] of Object.entries(value)) {
    if (item === undefined) continue; // as JSON.stringify does
    if (isBlock(item)) out.push(`${pad}${scalar(key)}:`, ...lines(item, indent + 2));
    else out.push(`${pad}${scalar(key)}: ${inline(item)}`);
  }
  return out;
}

/** One YAML document for a JSON value. */
export function toYaml(value: unknown): string {
  return `${isBlock(value) ? lines(value, 0).join("\n") : inline(value)}\n`;
}
