// Why a filter call did not complete; the kind is what metrics and logs group failures by.
export type FaultKind =
  | "trap" // the module trapped (unreachable, out-of-bounds access, a bad host-call argument)
  | "abort" // AssemblyScript's abort(): an assertion or a thrown error in the filter
  | "deadline" // the call ran past limits.callTimeoutMs
  | "memory" // the filter asked for more memory than limits.memoryMiB
  | "error" // the phase function returned non-zero
  | "unavailable"; // the filter could not be loaded or configured

export class FilterFault extends Error {
  readonly kind: FaultKind;
  constructor(kind: FaultKind, message: string) {
    super(message);
    this.name = "FilterFault";
    this.kind = kind;
  }
}
