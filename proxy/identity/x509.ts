// The one entry point to @peculiar/x509 in weft. Import the library through this module, never
// directly: @peculiar/x509 depends on tsyringe, which throws at load time ("tsyringe requires a
// reflect polyfill") unless Reflect.getMetadata exists. A static `import "./polyfill"` placed
// first is not enough on Bun 1.4, which evaluates CommonJS dependencies (the package resolves to
// its CJS build) before the ES modules that precede them; so the library is loaded with a
// dynamic import after the polyfill has run.
import "./reflect-polyfill.ts";

type X509 = typeof import("@peculiar/x509");
const loaded: X509 | { default: X509 } = await import("@peculiar/x509");
// A code-split bundle (npm run build) hands the CommonJS build over as the default export.
export const x509: X509 = "cryptoProvider" in loaded ? loaded : loaded.default;

// WebCrypto is global on Node 24, Deno 2 and Bun; set it explicitly rather than relying on the
// library's environment sniffing.
x509.cryptoProvider.set(globalThis.crypto);
