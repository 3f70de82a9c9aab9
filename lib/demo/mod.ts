/**
 * The demo room: `kevents demo`, three replicas against an embedded fake
 * API server, one clean handover and one crash, audited.
 *
 * @module
 */

export { type DemoOptions, type DemoResult, runDemo } from "./demo.ts";
