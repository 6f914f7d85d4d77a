// The tables `weft status` prints, kubectl-style: columns padded to their widest cell and three
// spaces apart. With a width, a line never runs past it: the columns that carry free text
// (messages, lists) are cut, widest first, and a cut cell ends in "…" (`-o wide` prints them whole).

export interface TableOptions {
  /** Most characters a line may have; undefined: no limit. */
  width?: number;
  /** Indices of the columns that may be cut to fit, e.g. a message. */
  shrink?: number[];
}

const GAP = "   ";
/** A cut column keeps at least this much, so that what it says can still be recognised. */
const MIN_CUT = 12;

export function cut(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, Math.max(0, width - 1))}…`;
}

export function table(rows: string[][], options: TableOptions = {}): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const { width, shrink = [] } = options;
  if (width !== undefined) {
    let over = widths.reduce((a, b) => a + b, 0) + GAP.length * (widths.length - 1) - width;
    while (over > 0) {
      const widest = shrink.filter((i) => widths[i]! > MIN_CUT).sort((a, b) => widths[b]! - widths[a]!)[0];
      if (widest === undefined) break; // the fixed columns alone are wider: nothing left to cut
      const second = Math.max(MIN_CUT, ...shrink.filter((i) => i !== widest).map((i) => widths[i]!));
      const by = Math.min(over, Math.max(1, widths[widest]! - second));
      const take = Math.min(by, widths[widest]! - MIN_CUT);
      widths[widest]! -= take;
      over -= take;
    }
  }
  return (
    rows
      .map((r) =>
        r
          .map((cell, i) => {
            const text = width === undefined ? cell : cut(cell, widths[i]!);
            return i === r.length - 1 ? text : text.padEnd(widths[i]!);
          })
          .join(GAP)
          .trimEnd(),
      )
      .join("\n") + "\n"
  );
}
