/**
 * What every AWS client of maskfleet shares: region, named profile, a per-service endpoint
 * override (S3-compatible stores, local stand-ins), and one credentials check before any work.
 */
import { defaultProvider } from "@aws-sdk/credential-provider-node";
import { ConfigError } from "./errors.js";

export type AwsService = "s3" | "bedrock" | "rekognition";

export interface AwsSettings {
  region: string;
  /** A profile of ~/.aws/config and ~/.aws/credentials (default: the SDK's chain). */
  profile?: string;
  /** Endpoint per service (default: AWS's, or AWS_ENDPOINT_URL_<SERVICE> as the SDK reads it). */
  endpoints?: Partial<Record<AwsService, string>>;
}

/** Constructor options for an AWS SDK v3 client of `service`. */
export function awsClientConfig(settings: AwsSettings, service: AwsService) {
  const endpoint = settings.endpoints?.[service];
  return {
    region: settings.region,
    credentials: defaultProvider(settings.profile ? { profile: settings.profile } : {}),
    ...(endpoint ? { endpoint } : {}),
  };
}

/** Resolves credentials once, so a missing or broken setup is one clear error before any job runs. */
export async function assertAwsCredentials(settings: AwsSettings): Promise<void> {
  try {
    await defaultProvider(settings.profile ? { profile: settings.profile } : {})();
  } catch (err) {
    const where = settings.profile ? `profile "${settings.profile}"` : "the environment, ~/.aws or an instance role";
    throw new ConfigError("aws", `no AWS credentials found in ${where} (${(err as Error).message.split("\n")[0]})`, { cause: err });
  }
}
