/**
 * Wording and checks the service's config loader and the Pulumi program's stack config share. A leaf module (only
 * TypeBox and node:net), so the program's preview does not load the service's config schema, engine or tokenizer.
 */
import { isIP } from 'node:net';
import { Kind, type TSchema } from '@sinclair/typebox';

/** Why a string is not an IPv4/IPv6 CIDR (a bare address counts as a single host), or undefined if it is one. */
export function cidrProblem(cidr: string): string | undefined {
  const [address = '', prefix, extra] = cidr.split('/');
  const family = isIP(address);
  if (family === 0 || extra !== undefined)
    return 'must be an IPv4 or IPv6 address or CIDR, e.g. 10.0.0.0/8 or fd00::/8';
  if (prefix === undefined) return undefined;
  const max = family === 4 ? 32 : 128;
  const bits = Number(prefix);
  if (!/^\d+$/.test(prefix) || bits > max) return `has a prefix length that must be 0 to ${max}`;
  return undefined;
}

/** What a schema accepts, in words: `must be an integer between 0 and 65535`. */
export function describeAllowed(schema: TSchema): string {
  const range = (kind: string) => {
    const lo = schema.minimum ?? schema.exclusiveMinimum;
    const hi = schema.maximum ?? schema.exclusiveMaximum;
    const loOp = schema.minimum !== undefined ? '≥' : '>';
    const hiOp = schema.maximum !== undefined ? '≤' : '<';
    if (schema.minimum !== undefined && schema.maximum !== undefined) {
      return `must be ${kind} between ${schema.minimum} and ${schema.maximum}`;
    }
    if (lo !== undefined && hi !== undefined) return `must be ${kind} ${loOp} ${lo} and ${hiOp} ${hi}`;
    if (lo !== undefined) return `must be ${kind} ${loOp} ${lo}`;
    if (hi !== undefined) return `must be ${kind} ${hiOp} ${hi}`;
    return `must be ${kind}`;
  };
  switch (schema[Kind]) {
    case 'Integer':
      return range('an integer');
    case 'Number':
      return range('a number');
    case 'Boolean':
      return 'must be true or false';
    case 'String': {
      const rules = [
        schema.minLength === 1 ? 'non-empty' : undefined,
        schema.maxLength !== undefined ? `at most ${schema.maxLength} characters` : undefined,
        schema.pattern !== undefined ? `matching /${schema.pattern}/` : undefined,
      ].filter((rule) => rule !== undefined);
      return `must be a string${rules.length > 0 ? ` (${rules.join(', ')})` : ''}`;
    }
    case 'Union':
      return `must be one of ${(schema.anyOf as TSchema[]).map((s) => JSON.stringify(s.const)).join(', ')}`;
    case 'Literal':
      return `must be ${JSON.stringify(schema.const)}`;
    case 'Object':
      return `must be a mapping with keys ${Object.keys(schema.properties as object).join(', ')}`;
    case 'Record':
      return 'must be a mapping of names to settings';
    default:
      return 'has an invalid value';
  }
}
