// A reader for the Prometheus text exposition format (0.0.4), for what the dashboard scrapes
// from the sidecars. Strict: a line that is not valid is an error naming the line, because
// a dashboard quietly missing a series shows wrong numbers.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export class ExpositionError extends Error {
  constructor(line: number, problem: string, text: string) {
    super(`metrics line ${line}: ${problem}: ${text.length > 120 ? `${text.slice(0, 120)}...` : text}`);
    this.name = "ExpositionError";
  }
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

function parseValue(text: string): number | null {
  switch (text) {
    case "+Inf":
    case "Inf":
      return Infinity;
    case "-Inf":
      return -Infinity;
    case "NaN":
      return NaN;
  }
  // Number("") is 0 and Number("0x10") is 16: neither is a Prometheus value.
  return /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text) ? Number(text) : null;
}

/**
 * The samples of the families `keep` accepts (by sample name, e.g. "x_bucket"); comments,
 * blank lines and other families are skipped without reading their labels.
 */
export function parseExposition(text: string, keep: (name: string) => boolean = () => true): Sample[] {
  const samples: Sample[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    const name = NAME.exec(line)?.[0];
    if (name === undefined) throw new ExpositionError(i + 1, "no metric name", line);
    if (!keep(name)) continue;
    let at = name.length;
    const labels: Record<string, string> = {};
    if (line[at] === "{") {
      at++;
      for (;;) {
        while (line[at] === " ") at++;
        if (line[at] === "}") {
          at++;
          break;
        }
        const label = LABEL_NAME.exec(line.slice(at))?.[0];
        if (label === undefined) throw new ExpositionError(i + 1, `no label name at column ${at + 1}`, line);
        at += label.length;
        while (line[at] === " ") at++;
        if (line[at] !== "=" || line[at + 1] !== '"') throw new ExpositionError(i + 1, `label ${label} has no ="value"`, line);
        at += 2;
        let value = "";
        for (;;) {
          const c = line[at];
          if (c === undefined) throw new ExpositionError(i + 1, `the value of label ${label} is not closed`, line);
          at++;
          if (c === '"') break;
          if (c === "\\") {
            const next = line[at++];
            if (next === "n") value += "\n";
            else if (next === "\\" || next === '"') value += next;
            else throw new ExpositionError(i + 1, `label ${label} has an unknown escape \\${next ?? ""}`, line);
          } else value += c;
        }
        labels[label] = value;
        while (line[at] === " ") at++;
        if (line[at] === ",") at++;
        else if (line[at] !== "}") throw new ExpositionError(i + 1, `expected "," or "}" after label ${label}`, line);
      }
    }
    // The value, then an optional timestamp (ignored: the scrape time is what counts here).
    const fields = line.slice(at).trim().split(/\s+/);
    if (fields.length < 1 || fields.length > 2 || fields[0] === "")
      throw new ExpositionError(i + 1, "expected a value and an optional timestamp", line);
    const value = parseValue(fields[0]!);
    if (value === null) throw new ExpositionError(i + 1, `${JSON.stringify(fields[0])} is not a number`, line);
    samples.push({ name, labels, value });
  }
  return samples;
}
