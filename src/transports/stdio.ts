import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";

/**
 * Serves one MCP session over stdin/stdout until the client goes away or a signal arrives, then
 * runs `onClose` (closing the store) exactly once. Nothing else may write to stdout.
 */
export async function serveStdio(server: Server, onClose: () => Promise<void>): Promise<void> {
  const transport = new StdioServerTransport();
  let closing: Promise<void> | undefined;
  const shutdown = () => {
    closing ??= (async () => {
      await server.close().catch(() => undefined);
      await onClose();
    })();
    return closing;
  };
  transport.onclose = () => void shutdown();
  process.stdin.on("end", () => void shutdown());
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => void shutdown().then(() => process.exit(0)));
  }
  await server.connect(transport);
}
