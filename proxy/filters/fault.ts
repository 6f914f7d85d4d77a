// Why a filter call did not complete; the kind is what metrics and logs group failures by.
export type FaultKind =
  | "trap" // the module trapped (unreachable, out-of-bounds access, a bad host-call argument)
  | "abort" // AssemblyScript's abort(): an assertion or a thrown error in the filter
  | "deadline" // the call ran past limits.callTimeoutMs
  | "memory" // the filter asked for more memory than limits.memoryMiB
  | "error" // the phase function returned non-zero
  | "unavailable" // the filter could not be loaded or configured
  | "quarantined"; // the filter kept failing and was not run (quarantine.ts)

// A fault's message goes into the 500's x-weft-error header and a log line, and a filter
// chooses part of it (its error_set or abort message, a value it tried to set): past this
// many characters it is cut, or one filter's megabyte-long message would make its 500 a
// response no HTTP client reads.
export const MAX_FAULT_MESSAGE = 1024;

export class FilterFault extends Error {
  readonly kind: FaultKind;
  constructor(kind: FaultKind, message: string) {
    super(
      message.length > MAX_FAULT_MESSAGE
        ? `${message.slice(0, MAX_FAULT_MESSAGE)}... (${message.length - MAX_FAULT_MESSAGE} more characters)`
        : message,
    );
    this.name = "FilterFault";
    this.kind = kind;
  }
}
