// The layer every image starts with: the few files of /etc that programs look up (users,
// name service order, CA certificates, protocol and service names) and the folders that are
// mount points. No shell, no package manager: the images run one program each.
import { existsSync } from "node:fs";
import { Tree } from "./tree.ts";

/** The proxy's user (the injector's proxyUid, which `weft init` exempts from redirection). */
export const WEFT_UID = 1337;

// root for the init container (it runs as root with NET_ADMIN, set in the pod spec), weft for
// everything else, nobody for clusters that run containers as 65534. Home is /tmp, the only
// writable folder (an emptyDir in the injected pod): anything that writes under ~ lands there.
const PASSWD = `root:x:0:0:root:/root:/usr/sbin/nologin
weft:x:${WEFT_UID}:${WEFT_UID}:weft:/tmp:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
`;
const GROUP = `root:x:0:
weft:x:${WEFT_UID}:
nogroup:x:65534:
`;
// Since glibc 2.34 the files and dns services are part of libc itself, so no libnss_*.so is
// needed; without this file glibc would ask DNS before /etc/hosts.
const NSSWITCH = `passwd: files
group: files
hosts: files dns
networks: files
protocols: files
services: files
`;

// Files copied from this machine, and the Debian package each comes from.
const FROM_DEBIAN: [file: string, pkg: string][] = [
  // Written by update-ca-certificates: the Mozilla roots, for HTTPS filter fetches and
  // anything that reads SSL_CERT_FILE.
  ["/etc/ssl/certs/ca-certificates.crt", "ca-certificates"],
  // getprotobyname("tcp") and named ports.
  ["/etc/protocols", "netbase"],
  ["/etc/services", "netbase"],
];

export function baseTree(): Tree {
  const tree = new Tree()
    .data("/etc/passwd", PASSWD)
    .data("/etc/group", GROUP)
    .data("/etc/nsswitch.conf", NSSWITCH)
    // Mount points the container runtime fills in; with a read-only root filesystem it cannot create them.
    .data("/etc/hosts", "127.0.0.1 localhost\n::1 localhost\n")
    .data("/etc/resolv.conf", "")
    .data("/etc/hostname", "")
    .dir("/tmp", 0o1777)
    .dir("/root", 0o700)
    .dir("/proc")
    .dir("/sys")
    .dir("/dev");
  for (const [file, pkg] of FROM_DEBIAN) {
    if (!existsSync(file))
      throw new Error(
        `${file} is missing on this machine: the images copy it from Debian's ${pkg}; install it with "apt-get install ${pkg}"`,
      );
    tree.file(file, file, { mode: 0o644 });
  }
  return tree;
}
