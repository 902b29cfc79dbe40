/**
 * Which JSON-Schema keywords the grammar really enforces. xgrammar ignores keywords it does not implement
 * (uniqueItems, multipleOf, not, if/then, a second allOf entry…) and would run those schemas with the keyword
 * silently dropped; each keyword below was checked against xgrammar 0.1.27 (test/unit/engine/grammar-schema.test.ts),
 * and a schema using any other is refused by name before it is compiled.
 */

/** Enforced by the grammar. */
const CONSTRAINING = new Set([
  'type',
  'enum',
  'const',
  'anyOf',
  // Constrained as anyOf: exact for disjoint branches, as in a discriminated union (pydantic's oneOf).
  'oneOf',
  'allOf',
  '$ref',
  '$defs',
  'definitions',
  'properties',
  'required',
  'additionalProperties',
  'minProperties',
  'maxProperties',
  'items',
  'prefixItems',
  'minItems',
  'maxItems',
  'minLength',
  'maxLength',
  'pattern',
  'format',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
]);

/** Annotations: they describe and never constrain, so they are allowed and ignored. */
const ANNOTATIONS = new Set([
  '$schema',
  '$id',
  '$comment',
  'title',
  'description',
  'default',
  'examples',
  'deprecated',
  'readOnly',
  'writeOnly',
  // OpenAPI's hint for a oneOf; pydantic emits it.
  'discriminator',
]);

/** `format` values xgrammar turns into a pattern; any other would constrain nothing. */
export const SUPPORTED_FORMATS = [
  'date',
  'time',
  'date-time',
  'duration',
  'email',
  'hostname',
  'ipv4',
  'ipv6',
  'uri',
  'uri-reference',
  'uuid',
] as const;

export const SCHEMA_LIMITS = {
  /** Nesting depth of subschemas; deeper schemas are refused (compile time grows with the grammar). */
  maxDepth: 32,
  /**
   * Largest minLength/maxLength. Each position of a bounded string is a grammar state whose token mask is
   * precomputed over the whole vocabulary, in the inference worker (which decodes nothing meanwhile): on
   * SmolLM2's 49,152 tokens maxLength 16 took 1.0 s, 64 took 2.5 s, 256 took 12 s on this 2-core box.
   */
  maxStringLength: 64,
} as const;

/** A schema the grammar cannot enforce: `keyword` names what, `path` where (JSON-pointer-like, from the root). */
export class UnsupportedSchemaError extends Error {
  constructor(
    readonly keyword: string,
    readonly path: string,
    why: string,
  ) {
    super(why);
    this.name = 'UnsupportedSchemaError';
  }
}

/**
 * Refuses a regular expression whose repetition counts exceed maxStringLength, for the compile cost that bounds
 * minLength/maxLength (every counted repetition is as many grammar states).
 */
export function checkPatternCost(pattern: string, keyword: string, path = ''): void {
  for (const m of pattern.matchAll(/\{(\d+)(?:,(\d*))?\}/g)) {
    const largest = Math.max(Number(m[1]), Number(m[2] || 0));
    if (largest > SCHEMA_LIMITS.maxStringLength) {
      throw new UnsupportedSchemaError(
        keyword,
        path,
        `repetition counts above ${SCHEMA_LIMITS.maxStringLength} ('${m[0]}') are not supported (its grammar takes seconds to compile)`,
      );
    }
  }
}

const BOUNDS = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'] as const;

const SUBSCHEMA_MAPS = ['properties', '$defs', 'definitions'] as const;
const SUBSCHEMA_LISTS = ['anyOf', 'oneOf', 'allOf', 'prefixItems'] as const;
const SUBSCHEMA_ONE = ['items', 'additionalProperties'] as const;

/** Throws UnsupportedSchemaError for the first keyword the grammar would not enforce. */
export function checkSchemaKeywords(schema: unknown, path = '', depth = 0): void {
  if (typeof schema === 'boolean') return;
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) {
    throw new UnsupportedSchemaError('', path, 'a schema must be an object or a boolean');
  }
  if (depth > SCHEMA_LIMITS.maxDepth) {
    throw new UnsupportedSchemaError('', path, `schemas nest at most ${SCHEMA_LIMITS.maxDepth} deep`);
  }
  const s = schema as Record<string, unknown>;
  for (const keyword of Object.keys(s)) {
    if (!CONSTRAINING.has(keyword) && !ANNOTATIONS.has(keyword)) {
      throw new UnsupportedSchemaError(
        keyword,
        path,
        `the JSON Schema keyword '${keyword}' is not supported`,
      );
    }
  }
  if ('format' in s && !(SUPPORTED_FORMATS as readonly unknown[]).includes(s.format)) {
    throw new UnsupportedSchemaError(
      'format',
      path,
      `format '${String(s.format)}' is not supported; supported: ${SUPPORTED_FORMATS.join(', ')}`,
    );
  }
  const bound = BOUNDS.find((k) => k in s);
  if (bound !== undefined && s.type !== 'integer') {
    // xgrammar 0.1.27's number ranges let values out ({minimum: -3, maximum: 3} allows 3.2 and -3.5;
    // {minimum: 0.5} reads the point as any character); its integer ranges are exact.
    throw new UnsupportedSchemaError(
      bound,
      path,
      `'${bound}' is enforced on integers only (type: "integer"); on other numbers the grammar cannot keep to it`,
    );
  }
  for (const key of ['minLength', 'maxLength'] as const) {
    const value = s[key];
    if (typeof value === 'number' && value > SCHEMA_LIMITS.maxStringLength) {
      throw new UnsupportedSchemaError(
        key,
        path,
        `'${key}' above ${SCHEMA_LIMITS.maxStringLength} is not supported (its grammar takes seconds to compile)`,
      );
    }
  }
  if (typeof s.pattern === 'string') checkPatternCost(s.pattern, 'pattern', path);
  if (Array.isArray(s.allOf) && s.allOf.length > 1) {
    throw new UnsupportedSchemaError('allOf', path, 'allOf with more than one schema is not supported');
  }
  if (typeof s.$ref === 'string' && !s.$ref.startsWith('#')) {
    throw new UnsupportedSchemaError('$ref', path, 'only local $refs ("#/$defs/…") are supported');
  }
  for (const key of SUBSCHEMA_MAPS) {
    const map = s[key];
    if (map === undefined) continue;
    if (map === null || typeof map !== 'object' || Array.isArray(map)) {
      throw new UnsupportedSchemaError(key, path, `'${key}' must be an object of schemas`);
    }
    for (const [name, sub] of Object.entries(map))
      checkSchemaKeywords(sub, `${path}/${key}/${name}`, depth + 1);
  }
  for (const key of SUBSCHEMA_LISTS) {
    const list = s[key];
    if (list === undefined) continue;
    if (!Array.isArray(list))
      throw new UnsupportedSchemaError(key, path, `'${key}' must be an array of schemas`);
    list.forEach((sub, i) => {
      checkSchemaKeywords(sub, `${path}/${key}/${i}`, depth + 1);
    });
  }
  for (const key of SUBSCHEMA_ONE) {
    if (s[key] !== undefined) checkSchemaKeywords(s[key], `${path}/${key}`, depth + 1);
  }
}
