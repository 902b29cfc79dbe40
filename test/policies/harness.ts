/**
 * Runs the pack's policies on resources the way @pulumi/policy's analyzer server does (server.js
 * makeAnalyzeRpcFun/makeAnalyzeStackRpcFun): the enforcement level from config over the policy's own, type
 * filtering through isType/notApplicable, each resource policy once per resource, each stack policy once over
 * all of them. Resources come fabricated from the provider classes (the way pulumi-policy-aws tests its
 * policies) or captured from a stack under mocks (test/infra/plan.ts).
 */

import type { Unwrap } from '@pulumi/pulumi';
import type {
  EnforcementLevel,
  PolicyResource,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationPolicy,
} from '../../policies/lib/policy.js';
import type { PlannedResource } from '../infra/plan.js';

type AnyPolicy = ResourceValidationPolicy | StackValidationPolicy;

export interface Violation {
  policy: string;
  level: EnforcementLevel;
  /** The message after the policy's description (what the CLI prints under it). */
  message: string;
  urn?: string | undefined;
}

/** A resource as the engine describes it to the analyzer. */
export interface AnalyzedResource {
  type: string;
  name: string;
  urn: string;
  props: Record<string, unknown>;
  parent?: string;
  /** URNs it depends on. */
  dependencies?: string[];
}

export type PackConfig = Record<string, { enforcementLevel?: EnforcementLevel; [key: string]: unknown }>;

class NotApplicable extends Error {}

const tokenOf = (resourceClass: unknown) => (resourceClass as { __pulumiType?: string }).__pulumiType;

/** A resource of `resourceClass` with these props (typed by the class's args, so names are the provider's). */
export function fabricate<TArgs>(
  // biome-ignore lint/suspicious/noExplicitAny: the constructor shape validateResourceOfType takes
  resourceClass: { new (name: string, args: TArgs, ...rest: any[]): unknown },
  name: string,
  props: Unwrap<NonNullable<TArgs>>,
  o: { stack?: string; parent?: string; dependencies?: string[] } = {},
): AnalyzedResource {
  const type = tokenOf(resourceClass);
  if (type === undefined) throw new Error(`${String(resourceClass)} carries no __pulumiType`);
  return {
    type,
    name,
    urn: `urn:pulumi:${o.stack ?? 'staging'}::chatmirror::${type}::${name}`,
    props: props as Record<string, unknown>,
    ...(o.parent === undefined ? {} : { parent: o.parent }),
    dependencies: o.dependencies ?? [],
  };
}

/** A resource the mocks captured, as the engine would send it. */
export function fromPlan(r: PlannedResource): AnalyzedResource {
  return {
    type: r.type,
    name: r.name,
    urn: r.urn,
    props: r.inputs,
    ...(r.options.parent === '' ? {} : { parent: r.options.parent }),
    dependencies: r.options.dependencies,
  };
}

function levelOf(policy: AnyPolicy, config: PackConfig): EnforcementLevel {
  const level = config[policy.name]?.enforcementLevel ?? policy.enforcementLevel ?? 'advisory';
  return level === 'remediate' ? 'mandatory' : level;
}

function settings(policy: AnyPolicy, config: PackConfig) {
  const { enforcementLevel: _, ...properties } = config[policy.name] ?? {};
  return <T extends object>() => properties as T;
}

const common = (type: string) => ({
  isType: (resourceClass: unknown) => tokenOf(resourceClass) === type,
  notApplicable: (reason?: string): never => {
    throw new NotApplicable(reason);
  },
});

function resourceArgs(r: AnalyzedResource, policy: AnyPolicy, config: PackConfig): ResourceValidationArgs {
  const { isType, notApplicable } = common(r.type);
  return {
    type: r.type,
    props: r.props,
    urn: r.urn,
    name: r.name,
    opts: {
      protect: false,
      ignoreChanges: [],
      aliases: [],
      customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
      additionalSecretOutputs: [],
      ...(r.parent === undefined ? {} : { parent: r.parent }),
    },
    stackTags: new Map(),
    isType,
    asType: ((resourceClass: unknown) => (isType(resourceClass) ? r.props : undefined)) as never,
    getConfig: settings(policy, config),
    notApplicable,
  };
}

/** The policy resources of a stack, parents and dependencies linked as the server links them. */
function stackResources(resources: readonly AnalyzedResource[]): PolicyResource[] {
  const linked = resources.map((r) => {
    const { isType } = common(r.type);
    const base = resourceArgs(r, { name: '', description: '' } as AnyPolicy, {});
    return {
      type: r.type,
      props: r.props,
      urn: r.urn,
      name: r.name,
      opts: base.opts,
      dependencies: [] as PolicyResource[],
      propertyDependencies: {},
      isType,
      asType: base.asType,
    } as PolicyResource;
  });
  const byUrn = new Map(linked.map((r) => [r.urn, r]));
  for (const [i, r] of resources.entries()) {
    const policyResource = linked[i]!;
    const parent = r.parent === undefined ? undefined : byUrn.get(r.parent);
    if (parent !== undefined) policyResource.parent = parent;
    policyResource.dependencies = (r.dependencies ?? []).flatMap((urn) => byUrn.get(urn) ?? []);
  }
  return linked;
}

/** Every violation the policies report on these resources. */
export async function analyze(
  policies: readonly AnyPolicy[],
  resources: readonly AnalyzedResource[],
  config: PackConfig = {},
): Promise<Violation[]> {
  const violations: Violation[] = [];
  for (const policy of policies) {
    const level = levelOf(policy, config);
    if (level === 'disabled') continue;
    const report = (message: string, urn?: string) =>
      violations.push({ policy: policy.name, level, message, urn });
    try {
      if ('validateStack' in policy) {
        const { notApplicable } = common('');
        await policy.validateStack(
          {
            resources: stackResources(resources),
            getConfig: settings(policy, config),
            stackTags: new Map(),
            notApplicable,
          },
          report,
        );
        continue;
      }
      const validations = [policy.validateResource ?? []].flat();
      for (const r of resources)
        for (const validate of validations) {
          try {
            await validate(resourceArgs(r, policy, config), (message: string) => report(message, r.urn));
          } catch (e) {
            if (!(e instanceof NotApplicable)) throw e;
          }
        }
    } catch (e) {
      if (!(e instanceof NotApplicable)) throw e;
    }
  }
  return violations;
}
