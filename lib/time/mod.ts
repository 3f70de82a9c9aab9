/**
 * The time room: the clock every timed part takes in its options (so tests
 * drive time instead of sleeping) and the jittered exponential backoff.
 *
 * @module
 */

export { Backoff } from "./backoff.ts";
export { type Clock, monotonicNow, systemClock } from "./clock.ts";
