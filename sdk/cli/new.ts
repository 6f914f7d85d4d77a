// `weft filter new`: a folder with a working filter to start from: its manifest, its code
// (sdk/cli/template/filter.ts, or sdk/cli/template-typescript/filter.ts for the full-TypeScript
// engine), a README with a WasmFilter to copy, and sample requests.
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { validateManifest, type Manifest } from "../manifest/manifest.ts";
import { SDK_SPECIFIER } from "../typescript/build.ts";

export type Engine = Manifest["engine"];

const TEMPLATES: Record<Engine, URL> = {
  assemblyscript: new URL("./template/filter.ts", import.meta.url),
  typescript: new URL("./template-typescript/filter.ts", import.meta.url),
};

function manifest(name: string, engine: Engine): Manifest {
  const check = validateManifest({
    name,
    version: "0.1.0",
    description: "Refuses requests under a configured path prefix and adds a greeting header to the others",
    abi: 1,
    engine,
    configSchema: {
      type: "object",
      additionalProperties: false,
      properties: {
        denyPathPrefix: { type: "string", pattern: "^/" },
        greeting: { type: "string", default: "hello" },
      },
    },
  });
  if (!check.ok) throw new Error(`cannot scaffold filter "${name}": ${check.problems.join("; ")}`);
  return check.manifest;
}

const EXAMPLE_CONFIG = { denyPathPrefix: "/admin", greeting: "hello from weft" };

function readme(name: string): string {
  return `# ${name}

Refuses requests under a configured path prefix with 403 and adds an \`x-greeting\` header to
every other request. Change \`filter.ts\` to make it yours; the SDK is described in weft's
docs/filter-sdk.md.

## Config

| field | type | default | |
|---|---|---|---|
| \`denyPathPrefix\` | string | none | requests whose path starts with it get 403 |
| \`greeting\` | string | \`hello\` | the value of \`x-greeting\` |

## Build and try

\`\`\`sh
weft filter test     # runs the sample requests in test/requests.json
weft filter build    # builds the module and prints its sha256
\`\`\`

## Attach it

\`\`\`yaml
apiVersion: weft.dev/v1alpha1
kind: WasmFilter
metadata:
  name: ${name}
  namespace: default
spec:
  selector:
    matchLabels:
      app: my-app
  url: oci://registry.example.com/filters/${name}:0.1.0   # after "weft filter push"
  sha256: "<the digest printed by weft filter build>"
  failStrategy: FailClose
  config:
    denyPathPrefix: ${EXAMPLE_CONFIG.denyPathPrefix}
    greeting: ${EXAMPLE_CONFIG.greeting}
\`\`\`
`;
}

const FIXTURES = [
  {
    name: "adds the greeting",
    request: { method: "GET", path: "/orders", headers: { accept: "application/json" } },
    config: EXAMPLE_CONFIG,
    expect: { continue: true, headers: { "x-greeting": EXAMPLE_CONFIG.greeting } },
  },
  {
    name: "refuses the denied prefix",
    request: { method: "GET", path: "/admin/users", headers: {} },
    config: EXAMPLE_CONFIG,
    expect: { status: 403 },
  },
  {
    name: "greets with the default without a config",
    request: { method: "POST", path: "/admin", headers: {}, body: "{}" },
    expect: { continue: true, headers: { "x-greeting": "hello" } },
  },
];

/**
 * What a full-TypeScript filter adds: a package.json, so that "npm install" puts its packages in
 * its own node_modules (which the build bundles), and a tsconfig.json for the editor and tsc
 * (the build reads neither setting from it).
 */
function typeScriptFiles(name: string): Record<string, string> {
  const compilerOptions = {
    target: "es2023",
    // The DOM's types declare TextEncoder, TextDecoder and console, which a filter has; not fetch or timers, which it has not.
    lib: ["es2023", "dom"],
    module: "preserve",
    moduleResolution: "bundler",
    strict: true,
    noEmit: true,
    allowImportingTsExtensions: true,
    paths: { [SDK_SPECIFIER]: [fileURLToPath(new URL("../typescript/index.ts", import.meta.url))] },
  };
  return {
    "package.json": `${JSON.stringify({ name, private: true, type: "module" }, null, 2)}\n`,
    "tsconfig.json": `${JSON.stringify({ compilerOptions, include: ["*.ts"] }, null, 2)}\n`,
  };
}

/** Writes a new filter `name` into `dir` (which must be empty or absent); returns the files written. */
export async function scaffoldFilter(dir: string, name: string, engine: Engine = "assemblyscript"): Promise<string[]> {
  const files: Record<string, string> = {
    "filter.json": `${JSON.stringify(manifest(name, engine), null, 2)}\n`,
    "filter.ts": await readFile(TEMPLATES[engine], "utf8"),
    "README.md": readme(name),
    "test/requests.json": `${JSON.stringify(FIXTURES, null, 2)}\n`,
    ...(engine === "typescript" ? typeScriptFiles(name) : {}),
  };
  const existing = await readdir(dir).catch(() => []);
  if (existing.length > 0) throw new Error(`cannot scaffold filter "${name}" in ${dir}: the folder is not empty; choose a new folder`);
  await mkdir(path.join(dir, "test"), { recursive: true });
  const written: string[] = [];
  for (const [file, text] of Object.entries(files)) {
    await writeFile(path.join(dir, file), text);
    written.push(path.join(dir, file));
  }
  return written;
}
