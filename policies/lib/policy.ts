/**
 * The two shapes every policy here takes: a check over one resource of a type, or over the whole stack. A check
 * returns its findings as `problem. Fix: what to change` strings; the wrapper names the resource in each message,
 * so every violation the CLI prints says which resource is wrong and how to fix it.
 */
import {
  type EnforcementLevel,
  type PolicyConfigSchema,
  type PolicyResource,
  type ResourceValidationArgs,
  type ResourceValidationPolicy,
  type StackValidationArgs,
  type StackValidationPolicy,
  validateResourceOfType,
} from '@pulumi/policy';
import type { Resource, Unwrap } from '@pulumi/pulumi';

// For tests outside the pack, which resolve packages from the root: the pack's own @pulumi/policy types.
export type {
  EnforcementLevel,
  PolicyResource,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationPolicy,
} from '@pulumi/policy';

/** One finding: what is wrong and what to change (a stack config key where there is one). */
export interface Finding {
  problem: string;
  fix: string;
}

export function message(resourceName: string, finding: Finding): string {
  return `${resourceName}: ${finding.problem}. Fix: ${finding.fix}`;
}

interface PolicyInfo {
  name: string;
  description: string;
  enforcementLevel?: EnforcementLevel;
  configSchema?: PolicyConfigSchema;
}

/** A policy over every resource of one class; `check` is pure: props (and the resource's args) in, findings out. */
export function resourcePolicy<TResource extends Resource, TArgs>(
  info: PolicyInfo,
  // biome-ignore lint/suspicious/noExplicitAny: the constructor shape validateResourceOfType itself takes
  resourceClass: { new (name: string, args: TArgs, ...rest: any[]): TResource },
  check: (props: Unwrap<NonNullable<TArgs>>, args: ResourceValidationArgs) => Finding[],
): ResourceValidationPolicy {
  return {
    enforcementLevel: 'mandatory',
    ...info,
    validateResource: validateResourceOfType(resourceClass, (props, args, report) => {
      for (const finding of check(props, args)) report(message(args.name, finding));
    }),
  };
}

/** A policy over any resource type (`check` decides what it applies to). */
export function anyResourcePolicy(
  info: PolicyInfo,
  check: (args: ResourceValidationArgs) => Finding[],
): ResourceValidationPolicy {
  return {
    enforcementLevel: 'mandatory',
    ...info,
    validateResource: (args, report) => {
      for (const finding of check(args)) report(message(args.name, finding));
    },
  };
}

/** A finding of a stack policy, on the resource it is about (or on the stack when none is). */
export interface StackFinding extends Finding {
  resource?: PolicyResource;
}

export function stackPolicy(
  info: PolicyInfo,
  check: (args: StackValidationArgs) => StackFinding[],
): StackValidationPolicy {
  return {
    enforcementLevel: 'mandatory',
    ...info,
    validateStack: (args, report) => {
      for (const finding of check(args))
        report(message(finding.resource?.name ?? 'stack', finding), finding.resource?.urn);
    },
  };
}

/** The policy's config over its defaults (the CLI passes only what `--policy-pack-config` sets). */
export function configOf<T extends object>(args: { getConfig<C extends object>(): C }, defaults: T): T {
  return { ...defaults, ...args.getConfig<Partial<T>>() };
}
