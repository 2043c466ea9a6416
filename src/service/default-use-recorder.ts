import type { KeyStore } from "../store/types.js";
import { CoalescingUseRecorder } from "./use-recorder.js";

const byStore = new WeakMap<KeyStore, CoalescingUseRecorder>();
/** Recorders whose store is not closed yet: written at process exit. */
const open = new Set<CoalescingUseRecorder>();
let exitHooked = false;

/**
 * The last-use recorder `verifyApiKey(store, …)` uses for this store (README, Development): one per
 * store, batched as the servers' is (at most a second late, not a disk sync per call), written on
 * its interval, by `store.close()` and at process exit. What a crash or an unhandled signal can lose
 * is that last interval of last-use times, never a key or a revocation (those are written by their
 * own operations before they answer).
 *
 * Pass it as `useRecorder` to a KeyService of your own to share the batching, or `flush()` it.
 */
export function defaultUseRecorder(store: KeyStore): CoalescingUseRecorder {
  const known = byStore.get(store);
  if (known) return known;
  const recorder = new CoalescingUseRecorder(store);
  byStore.set(store, recorder);
  open.add(recorder);
  // The store's own close() writes what is pending first, so the README's open/verify/close needs
  // no extra call. An own property over the class method, on this store only.
  const closeStore = store.close.bind(store);
  store.close = async () => {
    open.delete(recorder);
    try {
      await recorder.close();
    } finally {
      await closeStore();
    }
  };
  hookExit();
  return recorder;
}

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  // The loop ran dry (the recorder's timer is unref'd): write, then let the process end.
  process.on("beforeExit", () => {
    for (const recorder of open) if (recorder.pendingCount > 0) void recorder.flush().catch(() => undefined);
  });
  // process.exit(): no more turns of the loop. A synchronous store (SqliteKeyStore) writes in flushNow itself.
  process.on("exit", () => {
    for (const recorder of open) recorder.flushNow();
  });
}
