// Coverage from V8's precise block coverage through node:inspector (Node only): which code
// blocks ran since the last look, as numbers the engine can keep in a set, and line coverage
// of a target's source files for the results table. Takes reset V8's counters, so each take
// reports what ran since the previous one.
import { Session } from "node:inspector";
import { readFileSync } from "node:fs";
import { stripTypeScriptTypes } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";

export const ROOT = path.resolve(import.meta.dirname ?? ".", "..", "..");
const ROOT_URL = pathToFileURL(ROOT).href + "/";
// Offsets are packed into one number: script index, start and end of the range.
const OFFSET_BITS = 2 ** 21;

interface Range {
  startOffset: number;
  endOffset: number;
  count: number;
}
interface ScriptCoverage {
  url: string;
  functions: { ranges: Range[] }[];
}

export class Coverage {
  private readonly session = new Session();
  private readonly scripts = new Map<string, number>();
  /** Per function, every block V8 has reported in it (see take). */
  private readonly known = new Map<number, Map<number, Range>>();

  /** Starts counting; code loaded after this is covered from its first line. */
  constructor() {
    this.session.connect();
    this.post("Profiler.enable");
    this.post("Profiler.startPreciseCoverage", { callCount: true, detailed: true });
  }

  // Same-thread inspector sessions answer synchronously.
  private post(method: string, params?: object): unknown {
    let result: unknown;
    let error: Error | null = null;
    this.session.post(method, params, (e, r) => ((error = e), (result = r)));
    if (error) throw error;
    return result;
  }

  /** The raw coverage of the project's own code and its dependencies (not the fuzzing harness in test/). */
  takeRaw(): ScriptCoverage[] {
    const { result } = this.post("Profiler.takePreciseCoverage") as { result: ScriptCoverage[] };
    return result.filter((s) => s.url.startsWith(ROOT_URL) && !s.url.startsWith(`${ROOT_URL}test/`));
  }

  /**
   * Blocks that ran since the last take, one number each. V8 reports a block only where its
   * count differs from the enclosing range's, so a block that ran exactly as often as its
   * function is folded into it: every block ever reported for a function is remembered, and
   * counts as run when the innermost range reported around it now did.
   */
  take(): number[] {
    const blocks: number[] = [];
    const pack = (script: number, start: number, end: number) => (script * OFFSET_BITS + start) * OFFSET_BITS + end;
    for (const script of this.takeRaw()) {
      let index = this.scripts.get(script.url);
      if (index === undefined) this.scripts.set(script.url, (index = this.scripts.size));
      for (const { ranges } of script.functions) {
        const whole = ranges[0];
        if (whole.count === 0 || whole.endOffset >= OFFSET_BITS) continue;
        const fn = pack(index, whole.startOffset, whole.endOffset);
        let known = this.known.get(fn);
        if (!known) this.known.set(fn, (known = new Map()));
        for (let i = 1; i < ranges.length; i++) known.set(pack(0, ranges[i].startOffset, ranges[i].endOffset), ranges[i]);
        blocks.push(fn);
        for (const block of known.values()) {
          let count = whole.count;
          let size = Infinity;
          for (let i = 1; i < ranges.length; i++) {
            const r = ranges[i];
            if (r.startOffset <= block.startOffset && block.endOffset <= r.endOffset && r.endOffset - r.startOffset < size) {
              size = r.endOffset - r.startOffset;
              count = r.count;
            }
          }
          if (count > 0) blocks.push(pack(index, block.startOffset, block.endOffset));
        }
      }
    }
    return blocks;
  }

  close(): void {
    this.session.disconnect();
  }
}

/**
 * Lines of `sources` (repository-relative) that ran, c8-style: each character gets the count of
 * the innermost range around it; a line counts when it holds code (not only types, which Node
 * strips, or a comment) and is covered when every code character on it ran. `scripts` must be
 * one take covering everything since the files were loaded.
 */
export function lineCoverage(scripts: ScriptCoverage[], sources: readonly string[]): { covered: number; lines: number } {
  let covered = 0;
  let lines = 0;
  for (const source of sources) {
    const url = pathToFileURL(path.join(ROOT, source)).href;
    const script = scripts.find((s) => s.url === url);
    const code = stripTypeScriptTypes(readFileSync(path.join(ROOT, source), "utf8"));
    const counts = new Int32Array(code.length);
    // Larger ranges first, so that nested ones (inner blocks, inner functions) overwrite them.
    const ranges = (script?.functions ?? [])
      .flatMap((f) => f.ranges)
      .sort((a, b) => b.endOffset - b.startOffset - (a.endOffset - a.startOffset));
    for (const r of ranges) counts.fill(r.count > 0 ? 1 : 0, r.startOffset, Math.min(r.endOffset, code.length));
    let offset = 0;
    for (const line of code.split("\n")) {
      const text = line.trim();
      if (text !== "" && !/^(\/\/|\/\*|\*)/.test(text)) {
        lines++;
        let ran = true;
        for (let i = 0; i < line.length && ran; i++) if (line[i] !== " " && line[i] !== "\t" && counts[offset + i] === 0) ran = false;
        if (ran) covered++;
      }
      offset += line.length + 1;
    }
  }
  return { covered, lines };
}
