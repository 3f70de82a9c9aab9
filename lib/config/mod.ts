/**
 * kevents' configuration: defaults, then `datadog.yaml`, then the
 * environment (a later source wins), resolved once at start.
 * {@linkcode loadConfig} (`load.ts`) finds and reads the files (`datadog.yaml`,
 * the Agent 5's check file, the service-account namespace) and hands them,
 * with the environment it was given, to {@linkcode parseConfig}, a pure
 * function; nothing here reads `Deno.env`.
 *
 * Every setting is a row of {@linkcode CONFIG_KEYS}. The room, by concern:
 *
 * - `types.ts`: {@linkcode Config}, what the settings resolve to, and
 *   {@linkcode ConfigInput}, what main.ts hands in.
 * - `errors.ts`: {@linkcode ConfigError}, raised for a bad setting.
 * - `settings.ts`: the settings table, one row a setting; `sinks.ts`: the
 *   sinks' rows and the checks across them; `named_sinks.ts`: the sinks of
 *   `kevents_sinks`, implicit and named, with their options and rules.
 * - `files.ts`: where `datadog.yaml` is looked for and what it sets, with
 *   line numbers; `agent5.ts`: the Agent 5's deprecated settings.
 * - `parse.ts`: {@linkcode parseConfig}, which puts it all together;
 *   `load.ts`: {@linkcode loadConfig}, the file system side.
 * - Helpers of the room only (a leading underscore): `_values.ts` (the
 *   value parsers), `_masks.ts` (secrets shown in messages), `_typos.ts`
 *   (unknown keys of `datadog.yaml`), `_resolve.ts` (one setting from its
 *   sources), `_sink_list.ts` (the form of `kevents_sinks`).
 *
 * Other modules import from this file only.
 *
 * @module
 */

export { AGENT5_FILE, agent5FileCandidates } from "./agent5.ts";
export { ConfigError } from "./errors.ts";
export { configFileCandidates } from "./files.ts";
export { parseConfig } from "./parse.ts";
export { type AnyKeySpec, CONFIG_KEYS } from "./settings.ts";
export type { Config, ConfigInput, EnrichConfig, LockResource, SinkSpec } from "./types.ts";
export { loadConfig, type LoadConfigOptions } from "./load.ts";
