"""The workload on AWS Lambda, where no host stands between requests (`AGENTFORM_PLATFORM=aws`).

The same artifact does there what the local host does here, with AWS's services:

- `entry`: the handler's front door at a function URL or a hop: verifies who is calling,
  checks token budgets, writes the lineage record, answers with the host's headers;
- `identity`: end users (environment API keys hashed in DynamoDB; JWTs with an HS256 secret
  in Secrets Manager or a JWKS URL), with the local host's 401/403;
- `hop_token`: the signed token every hop carries (end user, trace, parent request, chain);
- `hops`: the hop client, `lambda:Invoke` on the targets' `live` aliases;
- `lineage`, `budgets`: records and atomic counters in the environment's DynamoDB table.

Items of the environment's table (keys `pk`, `sk`, both strings):

| item | pk | sk | attributes |
|---|---|---|---|
| execution | `trace#<trace id>` | `exec#<request id>` | the local host's record fields |
| request -> trace | `request#<request id>` | `trace` | `trace_id` |
| token usage | `usage#<kind>/<name>` | `<window>#<start>` | `input_tokens`, `output_tokens` |
| API key | `apikey#<sha256 of the key>` | `apikey` | `key_id`, `environment` |
| API key, listed | `apikeys` | `<key id>` | `key_hash`, `created` (and `revoked` once revoked) |

Nothing here imports the host or Pulumi; boto3 is imported only on this platform.
"""
