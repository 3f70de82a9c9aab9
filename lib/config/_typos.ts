/**
 * Typo hints for `datadog.yaml`. A `datadog.yaml` is shared with the Agent,
 * whose hundreds of other settings kevents ignores without a word. An
 * unknown top-level key is reported, as a warning naming its line, only
 * when it is likely meant for kevents: when it is within a typo of a
 * kevents setting (an edit distance of 1 for keys of up to 8 characters, 2
 * for longer ones; a swap of two neighbouring letters counts 1), which the
 * warning suggests (`colect_kubernetes_events`: did you mean
 * `collect_kubernetes_events`?), or when it starts with `kevents_`, a prefix
 * no Agent setting has. The few Agent settings that close to a kevents one
 * (`app_key`, next to `api_key`) are left alone.
 *
 * @module
 */

import { KNOWN_FILE_KEYS } from "./settings.ts";

/**
 * Settings of the Agent's datadog.yaml within a typo of a kevents setting
 * (`app_key` is one letter from `api_key`): they are the Agent's, not
 * misspellings, and get no warning.
 */
const AGENT_NEIGHBOURS: ReadonlySet<string> = new Set(["app_key"]);

/** The prefix of kevents' own settings, which no Agent setting has. */
const OWN_PREFIX = "kevents_";

/**
 * Edit distance between two texts (insertions, deletions, substitutions and
 * swaps of two neighbouring characters each count one), or `limit + 1` as
 * soon as it is known to exceed `limit`.
 */
function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  // Three rows of the optimal-string-alignment table: i - 2, i - 1 and i.
  let before: number[] = [];
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, before[j - 2]! + 1);
      }
      current.push(d);
      rowMin = Math.min(rowMin, d);
    }
    if (rowMin > limit) return limit + 1;
    before = previous;
    previous = current;
  }
  return previous[b.length]!;
}

/** How far a key may be from a kevents setting to be taken for a misspelling of it. */
function typoLimit(known: string): number {
  return known.length <= 8 ? 1 : 2;
}

/**
 * The warning for a top-level key kevents does not read, or undefined when
 * it is most likely one of the Agent's own settings (see the module doc).
 */
export function unknownKeyWarning(key: string, source: string): string | undefined {
  if (AGENT_NEIGHBOURS.has(key)) return undefined;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const known of KNOWN_FILE_KEYS) {
    const own = key.startsWith(OWN_PREFIX) && known.startsWith(OWN_PREFIX);
    // Under kevents' own prefix, where no Agent setting can be meant, a
    // looser match is still worth suggesting.
    const limit = own ? Math.max(typoLimit(known), Math.floor(known.length / 4)) : typoLimit(known);
    const d = editDistance(key, known, limit);
    if (d <= limit && d < bestDistance) {
      best = known;
      bestDistance = d;
    }
  }
  if (best !== undefined) {
    return `Unknown setting ${key} (${source}) is ignored: did you mean ${best}?`;
  }
  if (key.startsWith(OWN_PREFIX)) {
    return `Unknown setting ${key} (${source}) is ignored: kevents has no such setting ` +
      "(the README's Settings table lists them)";
  }
  return undefined;
}
