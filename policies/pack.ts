/**
 * The pack the policy analyzer serves: index.cjs loads this file when the Pulumi CLI starts the pack
 * (`pulumi preview --policy-pack policies`). Every policy is mandatory unless its own entry says otherwise;
 * `--policy-pack-config` changes any policy's level.
 */
import { PolicyPack } from '@pulumi/policy';
import { policies } from './policies.js';

new PolicyPack('chatmirror', { policies, enforcementLevel: 'mandatory' });
