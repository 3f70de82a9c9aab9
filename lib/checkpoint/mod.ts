/**
 * The checkpoint room: the fenced `datadogtoken` ConfigMap that says up to
 * which resourceVersion every event has been delivered, so that a new
 * leader resumes where the old one stopped. See checkpointer.ts for the
 * model (fencing by compare-and-swap, healing foreign edits), and lag.ts
 * for how far the written checkpoint lags behind the events read.
 *
 * @module
 */

export {
  Checkpointer,
  type CheckpointerOptions,
  TERM_ANNOTATION,
  type Token,
  TOKEN_KEY,
  TOKEN_TIMESTAMP,
  tokenFromData,
} from "./checkpointer.ts";
export { CheckpointLag, type CheckpointLagOptions, MAX_LAG_MARKS } from "./lag.ts";
