/** The stack's config as the Pulumi runtime hands it over (JSON strings, secrets decrypted) → typed config. */
import * as pulumi from '@pulumi/pulumi';
import { PROJECT, parseStackConfig, type StackConfig } from './config.js';

interface RuntimeInternals {
  isConfigSecret?: (key: string) => boolean;
}

export function readStackConfig(): StackConfig {
  const all = pulumi.runtime.allConfig();
  const isSecret = (pulumi.runtime as unknown as RuntimeInternals).isConfigSecret ?? (() => false);
  const secretKeys = Object.keys(all).filter((key) => key.startsWith(`${PROJECT}:`) && isSecret(key));
  return parseStackConfig(all, { secretKeys });
}
