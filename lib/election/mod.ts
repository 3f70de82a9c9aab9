/**
 * The election room: client-go's leader election (elector.ts) and the
 * locks it runs on, behind the small {@linkcode Lock} interface (lock.ts):
 * a coordination.k8s.io Lease (lease_lock.ts) or client-go's annotation
 * record on a ConfigMap or Endpoints object (annotation_lock.ts), the
 * Datadog Agent 6's lock. The elector gives each term its own
 * AbortController and settles only after the term's work has stopped.
 * Before a candidate takes its lock, the rival-lock guard (rival_lock.ts)
 * makes sure no other election holds a same-named lock of another kind.
 * Every replica's lock tells its metrics when it last saw a live leader
 * (observed_lock.ts).
 *
 * @module
 */

export {
  type AcquireGuard,
  runElector,
  ShutdownBudgetError,
  StepDownError,
  type Term,
  TermExpiredError,
  unelectedTerm,
} from "./elector.ts";
export type { LeaderElectionRecord, Lock } from "./lock.ts";
export { observeRenewals } from "./observed_lock.ts";
export { LeaseLock } from "./lease_lock.ts";
export { AnnotationLock, recordTimeMs } from "./annotation_lock.ts";
export {
  type LockKind,
  type Rival,
  type RivalLock,
  RivalLockGuard,
  type RivalLockMetrics,
  rivalLocks,
} from "./rival_lock.ts";
