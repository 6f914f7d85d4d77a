// `weft filter <command>`: the filter author's commands (bin/commands/filter/, listed in the
// registry, index.ts, as "filter NAME").

export const usage = `usage: weft filter <command>

  new NAME [--dir DIR] [--engine assemblyscript|typescript]
                              scaffold a filter in DIR (default ./NAME): manifest, source, README, sample requests;
                              --engine typescript: full TypeScript with npm packages, run by weft's QuickJS engine
  build [DIR] [--out FILE]    build DIR (default .) to a reproducible .wasm (default DIR/dist/NAME.wasm) and print its sha256
  test [DIR]                  build DIR and run its test/requests.json through weft's filter runtime
  push oci://REF [DIR|FILE.wasm] [--plain-http] [--username U --password-stdin] [--timeout SECONDS]
                              publish DIR (built; default .) or FILE.wasm as a Wasm OCI artifact, print its url and sha256
  search [TERM]               list marketplace filters (plugins/index.json) whose name or description has TERM
  add NAME[@VERSION] [--namespace NS] [--app LABEL]
                              print a WasmFilter for a marketplace filter, ready for kubectl apply
  mirror REGISTRY[/PATH] [--plain-http]
                              push every marketplace release to oci://REGISTRY[/PATH]/plugins/NAME:VERSION

"weft filter <command> --help" shows a command's usage.
docs: docs/filter-sdk.md (writing filters), docs/filter-abi.md (the ABI), docs/filters.md (running them)
`;
