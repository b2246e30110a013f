export { evaluateAlerts, applyFindings, ALERTS_TOPIC, type Evaluation } from './evaluate.ts';
export { evaluateRules, trafficFindings, trafficSince, RULES, type Finding, type RuleName, type AlertsConfig } from './rules.ts';
export { slackAlertMessage, MAX_SUBJECTS, type AlertKind } from './slack.ts';
