# finance.rego: sealgate's example policy for agents that move money.
#
# sealgate evaluates `data.sealgate.decision` with this input:
#   input.manifest   what the agent asks for: provider, method, parameters, reasoning,
#                    confidence_score, environment, agent_id, org_id, user_id
#   input.screening  what the screeners found: prompt_injection {flagged, score,
#                    families, fields} and secrets [{type, field}]
#   input.context    facts the gateway adds (time, policy version, ...)
# and expects {"allow": bool, "deny": [reason], "require_approval": [reason]}.
#
# Any deny reason denies the action. Otherwise any require_approval reason sends it to
# a person. Otherwise `allow` decides; anything else (an error, a missing rule) denies.
#
# Amounts are integers in cents, in input.manifest.parameters.amount.
package sealgate

import rego.v1

# The largest amount, in cents, each method may move without a person looking at it.
limits := {
	"payment": 5000, #  $50.00
	"refund": 10000, # $100.00
}

method := input.manifest.method

amount := input.manifest.parameters.amount

# A usable amount: a whole, non-negative number of cents.
valid_amount if {
	is_number(amount)
	amount >= 0
	round(amount) == amount
}

# --- the decision sealgate reads ---------------------------------------------------

decision := {
	"allow": allow,
	"deny": deny,
	"require_approval": require_approval,
}

# Allow only a known method with a valid amount inside its limit. The deny rules below
# say why anything else is refused.
default allow := false

allow if {
	valid_amount
	amount <= limits[method]
}

# --- deny: the action must not happen ------------------------------------------------

deny contains "Payment amount exceeds $50.00 limit" if {
	method == "payment"
	valid_amount
	amount > limits.payment
}

deny contains "Refund amount exceeds $100.00 limit" if {
	method == "refund"
	valid_amount
	amount > limits.refund
}

deny contains sprintf("%s amount %s", [method, problem]) if {
	limits[method]
	some problem in amount_problems
}

amount_problems contains "is missing: parameters.amount must be a number of cents" if not has_amount

amount_problems contains "must be a number of cents" if {
	has_amount
	not is_number(amount)
}

amount_problems contains "must not be negative" if {
	is_number(amount)
	amount < 0
}

amount_problems contains "must be a whole number of cents" if {
	is_number(amount)
	round(amount) != amount
}

has_amount if type_name(amount) # defined, whatever its type

deny contains sprintf("method %s is not allowed by policy finance", [method]) if {
	is_string(method)
	not limits[method]
}

deny contains "manifest method must be a string" if not is_string(method)

# A credential in the parameters would be handed to the provider: never allow it.
deny contains sprintf("credential or secret detected in %s", [finding.field]) if {
	some finding in secrets
	in_parameters(finding.field)
}

# A finding that does not say where it is might be anywhere, parameters included.
deny contains "credential or secret detected (location unknown)" if {
	some finding in secrets
	not is_string(finding.field)
}

# The screener's findings; anything that is not a list of objects counts as none.
secrets := [finding | some finding in input.screening.secrets; is_object(finding)] if {
	is_array(input.screening.secrets)
} else := []

in_parameters(field) if field == "/parameters"

in_parameters(field) if {
	is_string(field)
	startswith(field, "/parameters/")
}

# --- require_approval: a person must decide ------------------------------------------

require_approval contains sprintf("prompt injection suspected in %s", [flagged_fields]) if {
	input.screening.prompt_injection.flagged == true
}

# The JSON pointers the screener flagged, or "the manifest" if it named none.
flagged_fields := concat(", ", flagged) if {
	count(flagged) > 0
} else := "the manifest"

flagged := [f | some f in input.screening.prompt_injection.fields; is_string(f)] if {
	is_array(input.screening.prompt_injection.fields)
} else := []

require_approval contains "production action with confidence_score below 0.5" if {
	input.manifest.environment == "production"
	is_number(input.manifest.confidence_score)
	input.manifest.confidence_score < 0.5
}

require_approval contains "production action without a numeric confidence_score" if {
	input.manifest.environment == "production"
	not is_number(input.manifest.confidence_score)
}
