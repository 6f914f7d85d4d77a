// What `weft init` runs (control/init/cli.ts): Debian's iptables (iptables-save and
// iptables-restore, and the ip6tables pair: both multi-call binaries, their libraries, the
// xtables match and target modules, and the command names as links) and iproute2's `ip`, which
// makes the Service range local for --service-cidr (control/init/routing.ts).
//
// iptables-restore is the nft backend (xtables-nft-multi): Debian's default since Debian 10,
// and the only one RHEL 8 and later ship, so the kernels under today's nodes have nf_tables.
// The pod's network namespace is new and empty: no legacy rules there to stay consistent
// with. The legacy backend costs ~100 KB and stays in the image as iptables-legacy-restore
// (and -save) for a node whose kernel lacks nf_tables.
import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import path from "node:path";
import type { HashMemo } from "./hash.ts";
import { sharedLibraries } from "./ldd.ts";
import { Tree } from "./tree.ts";

const SBIN = "/usr/sbin";
const NFT = `${SBIN}/xtables-nft-multi`;
const LEGACY = `${SBIN}/xtables-legacy-multi`;
// Where libxtables looks for its modules (libxt_REDIRECT.so, libxt_owner.so, ...).
const MODULES = "/usr/lib/x86_64-linux-gnu/xtables";
const COMMANDS = ["iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"];
// Debian's /sbin/ip (usrmerge: /usr/sbin/ip links to it).
const IP = "/bin/ip";

export async function initToolsTree(memo: HashMemo): Promise<Tree> {
  for (const [file, pkg] of [
    [NFT, "iptables"],
    [LEGACY, "iptables"],
    [MODULES, "iptables"],
    [IP, "iproute2"],
  ]) {
    if (!existsSync(file!))
      throw new Error(
        `${file} is missing on this machine: the weft image copies Debian's ${pkg}; install it with "apt-get install ${pkg}"`,
      );
  }
  const tree = new Tree();
  await tree.host(IP);
  tree.link(`${SBIN}/ip`, IP);
  const binaries = [NFT, LEGACY, IP];
  for (const binary of binaries) await tree.host(binary);
  for (const module of (await readdir(MODULES)).filter((f) => f.endsWith(".so")).sort()) {
    await tree.host(path.join(MODULES, module));
    binaries.push(path.join(MODULES, module));
  }
  for (const lib of await sharedLibraries(binaries, memo)) await tree.host(lib);
  // The multi-call binaries act by the name they are called with.
  for (const command of COMMANDS) {
    tree.link(`${SBIN}/${command}`, "xtables-nft-multi");
    const [family, ...rest] = command.split("-");
    const suffix = rest.length ? `-${rest.join("-")}` : "";
    tree.link(`${SBIN}/${family}-nft${suffix}`, "xtables-nft-multi");
    tree.link(`${SBIN}/${family}-legacy${suffix}`, "xtables-legacy-multi");
  }
  return tree;
}
