/**
 * {@linkcode ConfigError}, raised for a bad setting, naming the setting,
 * where its value came from, the value and the rule it breaks.
 *
 * @module
 */

/** Options of {@linkcode ConfigError}. */
export interface ConfigErrorOptions {
  /** The setting (file key), or "" for an error about the whole file. */
  key: string;
  /** Where the value came from: `env DD_X`, `PATH line N`, `service-account namespace`. */
  source: string;
  /** The offending value as given. */
  value: string;
  /** The rule it breaks. */
  rule: string;
  /** The message, when the default "Cannot parse KEY VALUE (SOURCE): RULE" does not fit. */
  message?: string;
  cause?: unknown;
}

/** Raised for a bad setting; main.ts prints it and exits with code 2. */
export class ConfigError extends Error {
  /** The setting (file key), or "" for an error about the whole file. */
  readonly key: string;
  /** Where the value came from. */
  readonly source: string;
  /** The offending value as given. */
  readonly value: string;
  /** The rule it breaks. */
  readonly rule: string;

  constructor(options: ConfigErrorOptions) {
    const { key, source, value, rule } = options;
    super(
      options.message ?? `Cannot parse ${key} ${JSON.stringify(value)} (${source}): ${rule}`,
      { cause: options.cause },
    );
    this.name = "ConfigError";
    this.key = key;
    this.source = source;
    this.value = value;
    this.rule = rule;
  }
}
