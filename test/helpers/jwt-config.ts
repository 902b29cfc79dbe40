import { Value } from '@sinclair/typebox/value';
import { JwtSchema, type ServiceConfig } from '../../service/config/schema.js';

export type JwtConfig = NonNullable<ServiceConfig['auth']['jwt']>;

/** An auth.jwt section as the config loader would produce it: the given fields over the schema's defaults. */
export function jwtConfig(fields: Pick<JwtConfig, 'issuer' | 'audience'> & Partial<JwtConfig>): JwtConfig {
  return Value.Default(JwtSchema, structuredClone(fields)) as JwtConfig;
}
