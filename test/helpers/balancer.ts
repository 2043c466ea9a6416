import { createServer, request, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

// A round-robin balancer in front of keywarden instances, as the tests of `serve --stateless` need
// one: each request goes to the next upstream in turn, whatever it is (no stickiness, no session
// affinity), streamed both ways, so that SSE answers pass as they come.

export interface Forwarded {
  /** Index of the upstream that answered. */
  upstream: number;
  method: string;
  status: number;
  /** The request's JSON-RPC method(s), when its body was JSON-RPC. */
  rpc: string[];
  headers: IncomingHttpHeaders;
}

export interface Balancer {
  /** The balancer's /mcp, http://127.0.0.1:PORT/mcp. */
  url: string;
  /** Every request forwarded so far, in the order they were sent on. */
  forwarded: Forwarded[];
  close(): Promise<void>;
}

/** `upstreams`: base URLs (http://127.0.0.1:PORT) of the instances, taken in turn. */
export async function startBalancer(upstreams: readonly string[]): Promise<Balancer> {
  const forwarded: Forwarded[] = [];
  let next = 0;
  const server = createServer((req, res) => {
    const upstream = next++ % upstreams.length;
    const target = new URL(req.url ?? "/", upstreams[upstream]);
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      // Host passes through as a balancer in front of one name would send it.
      const out = request(target, { method: req.method, headers: req.headers }, (answer) => {
        forwarded.push({ upstream, method: req.method ?? "", status: answer.statusCode ?? 0, rpc: rpcMethods(body), headers: answer.headers });
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      out.on("error", () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
      // The client went away (it closed a stream): so does the request upstream, as with a real balancer.
      res.on("close", () => out.destroy());
      out.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    forwarded,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function rpcMethods(body: Buffer): string[] {
  try {
    const parsed = JSON.parse(body.toString("utf8")) as unknown;
    const messages = Array.isArray(parsed) ? parsed : [parsed];
    return messages.map((message) => String((message as { method?: unknown; result?: unknown }).method ?? "(response)"));
  } catch {
    return [];
  }
}
