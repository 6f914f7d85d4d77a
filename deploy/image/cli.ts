// `npm run image [-- --push REGISTRY [--insecure]]`: builds weft's images (build.ts), prints
// where they are and their sizes, and optionally pushes them. docs/images.md explains the rest.
import process from "node:process";
import { parseArgs } from "node:util";
import { buildImages, mb } from "./build.ts";
import { pushImage } from "./push.ts";

const USAGE = `usage: npm run image [-- --push REGISTRY [--insecure]] [-- --quiet]

Builds weft:VERSION (Node, iptables, ip), weft:VERSION-deno, weft:VERSION-bun and weft-shop:VERSION
into an OCI image layout under ~/.cache/weft/images/oci (WEFT_IMAGE_CACHE moves the cache).

  --push REGISTRY   then copy every image to REGISTRY/NAME:TAG with skopeo
                    (REGISTRY: "localhost:5000", "ghcr.io/my-org"; log in with "skopeo login" first)
  --insecure        the registry speaks plain HTTP or has a certificate skopeo does not trust
  --quiet           print only the layout's path
`;

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: process.argv.slice(2),
      options: {
        push: { type: "string" },
        insecure: { type: "boolean", default: false },
        quiet: { type: "boolean", default: false },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    process.stderr.write(`npm run image: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const started = Date.now();
  const say = values.quiet ? () => {} : (line: string) => process.stdout.write(`${line}\n`);
  const { layout, images } = await buildImages({ log: say });
  say(`\nbuilt in ${((Date.now() - started) / 1000).toFixed(1)} s, OCI image layout ${layout}:`);
  for (const image of images) {
    const tar = image.layers.reduce((n, l) => n + l.tarSize, 0);
    const gz = image.layers.reduce((n, l) => n + l.size, 0);
    say(`  ${image.ref.padEnd(20)} ${image.manifest.digest}  ${mb(tar)} (${mb(gz)} compressed)`);
  }
  // Not "podman pull oci:...": podman 4.3 names an image pulled from a layout after the layout's folder.
  say(
    `\nrun one:   skopeo copy oci:${layout}:${images[0]!.ref} containers-storage:localhost/${images[0]!.ref} && podman run --rm localhost/${images[0]!.ref}`,
  );
  if (values.quiet) process.stdout.write(`${layout}\n`);
  if (values.push) {
    for (const image of images) {
      const to = await pushImage(layout, image.ref, { registry: values.push, insecure: values.insecure });
      say(`pushed ${to}@${image.manifest.digest}`);
    }
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: Error) => {
    process.stderr.write(`npm run image: ${error.message}\n`);
    process.exit(1);
  },
);
