// Why a filter did not build, with one "file:line:column: message" (or "file: message") per
// problem, so an editor or CI log points at the spot.
export class BuildError extends Error {
  readonly diagnostics: string[];
  constructor(message: string, diagnostics: string[]) {
    super(diagnostics.length ? `${message}\n${diagnostics.map((d) => `  ${d}`).join("\n")}` : message);
    this.name = "BuildError";
    this.diagnostics = diagnostics;
  }
}
