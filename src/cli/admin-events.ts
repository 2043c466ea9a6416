// keywarden admin list-events
import type { Command } from "commander";
import { PAGE_LIMIT_MAX } from "../service/validation.js";
import { adminCommand, everyPage, userNamesById, withAdminApp, type AdminOptions } from "./admin.js";
import { eventLine, lines, print } from "./format.js";
import { effectiveOptions } from "./options.js";

export function addListEvents(admin: Command): void {
  adminCommand(admin, "list-events")
    .description("print the audit log, oldest first: creates, updates, rotations, revocations, failed authentications, denied calls")
    .option("--key-id <id>", "only the events of this key")
    .option("--json", "print JSON")
    .action((_options: unknown, command: Command) => {
      const options = effectiveOptions<AdminOptions & { keyId?: string }>(command);
      return withAdminApp(options, { key_id: "--key-id" }, async ({ service }, principal) => {
        const events = await everyPage(async (cursor) => {
          const page = await service.listKeyEvents(principal, { key_id: options.keyId, limit: PAGE_LIMIT_MAX, cursor });
          return { items: page.events, next: page.next_cursor };
        });
        print(options.json === true, events, lines(events, eventLine(await userNamesById(service, principal)), "no events"));
      });
    });
}
