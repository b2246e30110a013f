// Partner master data: pull each partner's master (its API or a CSV), diff it with ours in SQL,
// apply plain changes at once and sensitive ones by rule or by a second person.
export { SENSITIVE_FIELDS, PLAIN_FIELDS, FIELDS, WHOLE, isSensitive, MAX_PRICE, type Field } from './fields.ts';
export { MasterdataInputError } from './errors.ts';
export { checkMasterCsvMapping, type MasterCsvMapping } from './csv.ts';
export { getSource, setSource, sourceJson, type MasterSource, type SourceInput } from './sources.ts';
export { pullMaster, type PullRequest, type PullSummary, type PullCounts, type PullDeps } from './pull.ts';
export { RULE_KINDS, ruleFor, listRules, setRule, ruleJson, withinBp, type Rule, type RuleKind, type RuleInput } from './rules.ts';
export {
  CHANGE_STATUSES, CHANGE_TRANSITIONS, canTransition, decideChange, applyChange, type Change, type ChangeStatus, type DecideError,
} from './apply.ts';
export { startMasterSimulator, initialCatalog, changeDay, type MasterSimulator, type SimPartner, type MasterFault } from './simulator.ts';
export { listPulls, getPull, changeSet, listChanges, dryRun, pullJson, changeJson, type Pull, type ProductChanges, type DryRun } from './read.ts';
export { pullDue, masterdataJobs } from './schedule.ts';
export { buildMasterDigest, masterSlackMessage, publishMasterDigests, type MasterDigest } from './digest.ts';
