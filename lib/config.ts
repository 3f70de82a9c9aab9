/**
 * Temporary: lib/sinks/mod.ts, which is being edited elsewhere, still
 * imports `Config` and `ConfigError` from here. Delete this file once its
 * import reads `from "../config/mod.ts"`; everything else imports the
 * configuration from lib/config/mod.ts.
 *
 * @module
 */

export { type Config, ConfigError } from "./config/mod.ts";
