// Addresses handed to attachments, and the key that names an attachment.
export interface AttachmentKey {
  containerId: string;
  ifName: string;
}

export interface Lease {
  /** e.g. 10.244.0.5/24: the address with the prefix of the pool it came from */
  address: string;
  gateway: string;
}
