/** Every policy of the pack, in the order the README lists them; pack.ts serves them, tests run them directly. */
import { containerPolicies } from './containers.js';
import { exposurePolicies } from './exposure.js';
import { firewallPolicies } from './firewall.js';
import { imagePolicies } from './images.js';
import { modelPolicies } from './model.js';
import { secretPolicies } from './secrets.js';
import { servicePolicies } from './service.js';

export const policies = [
  ...imagePolicies,
  ...containerPolicies,
  ...exposurePolicies,
  ...servicePolicies,
  ...secretPolicies,
  ...modelPolicies,
  ...firewallPolicies,
];
