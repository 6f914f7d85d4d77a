// runtimes: node deno bun
// gRPC through the sidecar with a real @grpc/grpc-js client and server: HTTP/2 both ways,
// metadata, status and trailers, streaming in each direction, and the proxy's own errors
// as gRPC statuses.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import { startProxy, type RunningProxy } from "./support/proxy.ts";
import { deadPort } from "./support/upstream.ts";

interface Msg {
  text: string;
}
const json = {
  serialize: (m: Msg) => Buffer.from(JSON.stringify(m)),
  deserialize: (b: Buffer) => JSON.parse(b.toString()) as Msg,
};
const method = (name: string, requestStream: boolean, responseStream: boolean) => ({
  path: `/weft.test.Echo/${name}`,
  requestStream,
  responseStream,
  requestSerialize: json.serialize,
  requestDeserialize: json.deserialize,
  responseSerialize: json.serialize,
  responseDeserialize: json.deserialize,
});
const EchoService = {
  unary: method("Unary", false, false),
  fail: method("Fail", false, false),
  serverStream: method("ServerStream", false, true),
  clientStream: method("ClientStream", true, false),
  bidi: method("Bidi", true, true),
} satisfies grpc.ServiceDefinition;
const EchoClient = grpc.makeGenericClientConstructor(EchoService, "Echo");
type Client = InstanceType<typeof EchoClient> & Record<string, (...args: unknown[]) => unknown>;

const IS_BUN = "Bun" in globalThis;

function proxyConfig(upstreamPort: number) {
  return {
    version: "grpc-1",
    listeners: [
      {
        name: "outbound",
        direction: "Outbound" as const,
        address: "127.0.0.1",
        port: 0,
        virtualHosts: [{ name: "echo", domains: ["echo", "echo.test.svc.cluster.local"], routes: [{ backends: [{ cluster: "echo" }] }] }],
      },
    ],
    clusters: [
      {
        name: "echo",
        protocol: "http2" as const,
        service: "echo.test.svc.cluster.local",
        endpoints: [{ address: "127.0.0.1", port: upstreamPort }],
      },
    ],
  };
}

describe("gRPC through the sidecar", () => {
  let server: grpc.Server;
  let serverPort = 0;
  let proxy: RunningProxy | null = null;
  let client: Client;

  before(async () => {
    server = new grpc.Server();
    server.addService(EchoService, {
      unary: (call: grpc.ServerUnaryCall<Msg, Msg>, done: grpc.sendUnaryData<Msg>) => {
        const trailer = new grpc.Metadata();
        trailer.set("x-trailer", "t1");
        done(null, { text: `echo ${call.request.text} (${call.metadata.get("x-caller")[0] ?? "?"})` }, trailer);
      },
      fail: (_call: grpc.ServerUnaryCall<Msg, Msg>, done: grpc.sendUnaryData<Msg>) =>
        done({ code: grpc.status.NOT_FOUND, details: "no such thing: ünïcode" }),
      serverStream: (call: grpc.ServerWritableStream<Msg, Msg>) => {
        for (let i = 0; i < 5; i++) call.write({ text: `${call.request.text}-${i}` });
        call.end();
      },
      clientStream: (call: grpc.ServerReadableStream<Msg, Msg>, done: grpc.sendUnaryData<Msg>) => {
        const seen: string[] = [];
        call.on("data", (m: Msg) => seen.push(m.text));
        call.on("end", () => done(null, { text: seen.join("+") }));
      },
      bidi: (call: grpc.ServerDuplexStream<Msg, Msg>) => {
        call.on("data", (m: Msg) => call.write({ text: m.text.toUpperCase() }));
        call.on("end", () => call.end());
      },
    });
    serverPort = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, port) => (e ? reject(e) : resolve(port))),
    );
    if (IS_BUN) return;
    proxy = await startProxy(proxyConfig(serverPort));
    client = new EchoClient(`127.0.0.1:${proxy.outbound}`, grpc.credentials.createInsecure(), {
      "grpc.default_authority": "echo",
    }) as Client;
  });
  after(async () => {
    client?.close();
    await proxy?.stop();
    server.forceShutdown();
  });

  if (IS_BUN) {
    it("refuses an HTTP/2 upstream cluster on Bun at start-up, saying why and what to do", async () => {
      await assert.rejects(
        startProxy(proxyConfig(serverPort)),
        /cluster "echo" speaks HTTP\/2 to its upstream.*Bun.*Run this sidecar on Node\.js or Deno/s,
      );
    });
    return;
  }

  // Resolves once both the answer and the final status (with trailing metadata) are in.
  const unary = (name: string, request: Msg, metadata = new grpc.Metadata()) =>
    new Promise<{ error: grpc.ServiceError | null; reply?: Msg; trailers?: grpc.Metadata }>((resolve) => {
      let answer: { error: grpc.ServiceError | null; reply?: Msg } | null = null;
      let trailers: grpc.Metadata | null = null;
      const settle = () => answer && trailers && resolve({ ...answer, trailers });
      const call = client[name](request, metadata, (error: grpc.ServiceError | null, reply?: Msg) => {
        answer = { error, reply };
        settle();
      }) as grpc.ClientUnaryCall;
      call.on("status", (s: grpc.StatusObject) => {
        trailers = s.metadata;
        settle();
      });
    });

  it("carries a unary call with metadata and trailing metadata", async () => {
    const metadata = new grpc.Metadata();
    metadata.set("x-caller", "test");
    const { error, reply, trailers } = await unary("unary", { text: "hi" }, metadata);
    assert.equal(error, null);
    assert.equal(reply!.text, "echo hi (test)");
    assert.deepEqual(trailers?.get("x-trailer"), ["t1"]);
  });

  it("passes an error status and its message", async () => {
    const { error } = await unary("fail", { text: "x" });
    assert.equal(error?.code, grpc.status.NOT_FOUND);
    assert.equal(error?.details, "no such thing: ünïcode");
  });

  it("streams from the server, from the client, and both ways", async () => {
    const fromServer = await new Promise<string[]>((resolve, reject) => {
      const got: string[] = [];
      const call = client.serverStream({ text: "s" }) as grpc.ClientReadableStream<Msg>;
      call.on("data", (m: Msg) => got.push(m.text));
      call.on("end", () => resolve(got));
      call.on("error", reject);
    });
    assert.deepEqual(fromServer, ["s-0", "s-1", "s-2", "s-3", "s-4"]);

    const fromClient = await new Promise<string>((resolve, reject) => {
      const call = client.clientStream((e: grpc.ServiceError | null, m?: Msg) =>
        e ? reject(e) : resolve(m!.text),
      ) as grpc.ClientWritableStream<Msg>;
      for (const t of ["a", "b", "c"]) call.write({ text: t });
      call.end();
    });
    assert.equal(fromClient, "a+b+c");

    const both = await new Promise<string[]>((resolve, reject) => {
      const got: string[] = [];
      const call = client.bidi() as grpc.ClientDuplexStream<Msg, Msg>;
      call.on("data", (m: Msg) => {
        got.push(m.text);
        if (got.length < 3) call.write({ text: `m${got.length}` });
        else call.end();
      });
      call.on("end", () => resolve(got));
      call.on("error", reject);
      call.write({ text: "m0" });
    });
    assert.deepEqual(both, ["M0", "M1", "M2"]);
  });

  it("carries 50 concurrent calls on one connection", async () => {
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => unary("unary", { text: `n${i}` })));
    results.forEach((r, i) => assert.equal(r.reply?.text, `echo n${i} (?)`));
  });

  it("answers its own errors as gRPC statuses (unknown host, upstream down)", async () => {
    const stray = new EchoClient(`127.0.0.1:${proxy!.outbound}`, grpc.credentials.createInsecure(), {
      "grpc.default_authority": "nowhere",
    }) as Client;
    const miss = await new Promise<grpc.ServiceError | null>((resolve) =>
      stray.unary({ text: "x" }, (e: grpc.ServiceError | null) => resolve(e)),
    );
    stray.close();
    assert.equal(miss?.code, grpc.status.UNIMPLEMENTED);
    assert.match(miss?.details ?? "", /no route for host "nowhere"/);

    const down = await startProxy(proxyConfig(await deadPort()));
    const lost = new EchoClient(`127.0.0.1:${down.outbound}`, grpc.credentials.createInsecure(), {
      "grpc.default_authority": "echo",
    }) as Client;
    try {
      const failed = await new Promise<grpc.ServiceError | null>((resolve) =>
        lost.unary({ text: "x" }, (e: grpc.ServiceError | null) => resolve(e)),
      );
      assert.equal(failed?.code, grpc.status.UNAVAILABLE);
      assert.match(failed?.details ?? "", /cannot connect/);
    } finally {
      lost.close();
      await down.stop();
    }
  });
});

describe("gRPC between two sidecars over mTLS (ALPN h2)", {
  skip: IS_BUN ? "Bun refuses HTTP/2 upstream clusters (asserted above)" : undefined,
}, () => {
  it("carries a call from the client's sidecar to the server's and back", async () => {
    const { createCa, issueWorkload } = await import("./support/pki.ts");
    const ca = await createCa();
    const serverCert = await issueWorkload(ca, { spiffeId: "spiffe://cluster.local/ns/test/sa/echo" });
    const clientCert = await issueWorkload(ca, { spiffeId: "spiffe://cluster.local/ns/test/sa/caller" });
    const identity = (c: typeof serverCert) => ({
      certificateChain: c.certificateChain,
      privateKey: c.privateKey,
      trustBundle: ca.certificate,
    });
    const server = new grpc.Server();
    server.addService(EchoService, {
      unary: (call: grpc.ServerUnaryCall<Msg, Msg>, done: grpc.sendUnaryData<Msg>) =>
        done(null, { text: String(call.metadata.get("x-forwarded-client-cert")[0]) }),
      fail: () => {},
      serverStream: () => {},
      clientStream: () => {},
      bidi: () => {},
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    const serverSide = await startProxy({
      version: "echo-sidecar",
      node: { namespace: "test", serviceAccount: "echo" },
      identity: identity(serverCert),
      listeners: [
        {
          name: "inbound",
          direction: "Inbound",
          address: "127.0.0.1",
          port: 0,
          tls: "STRICT",
          virtualHosts: [{ name: "app", domains: ["*"], routes: [{ backends: [{ cluster: "app" }] }] }],
        },
      ],
      clusters: [{ name: "app", protocol: "http2", endpoints: [{ address: "127.0.0.1", port }] }],
    });
    const clientSide = await startProxy({
      ...proxyConfig(serverSide.inbound),
      node: { namespace: "test", serviceAccount: "caller" },
      identity: identity(clientCert),
      clusters: [
        {
          name: "echo",
          protocol: "http2",
          endpoints: [{ address: "127.0.0.1", port: serverSide.inbound }],
          tls: { identities: ["spiffe://cluster.local/ns/test/sa/echo"] },
        },
      ],
    });
    const client = new EchoClient(`127.0.0.1:${clientSide.outbound}`, grpc.credentials.createInsecure(), {
      "grpc.default_authority": "echo",
    }) as Client;
    try {
      const reply = await new Promise<Msg>((resolve, reject) =>
        client.unary({ text: "x" }, (e: grpc.ServiceError | null, m?: Msg) => (e ? reject(e) : resolve(m!))),
      );
      assert.equal(reply.text, "By=spiffe://cluster.local/ns/test/sa/echo;URI=spiffe://cluster.local/ns/test/sa/caller");
    } finally {
      client.close();
      await clientSide.stop();
      await serverSide.stop();
      server.forceShutdown();
    }
  });
});
