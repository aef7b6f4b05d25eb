import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType } from '../../src/generated/peer.js';
import { LOADER_OPTIONS } from '../../src/api/proto.js';
import type { PeerClient } from '../../src/generated/cei/v1/Peer.js';

export type { PeerFrame, PeerFrame__Output } from '../../src/generated/cei/v1/PeerFrame.js';
export type { PeerClient, PeerHandlers } from '../../src/generated/cei/v1/Peer.js';

/**
 * cei's node-to-node service (`cei.v1.Peer`, proto/cei/v1/peer.proto), loaded here with the loader
 * options of src/api/proto.ts, so that the raw stream ceiling sends the frames a cluster link sends
 * (a "batch" PeerFrame of "msg" frames) without running any of the cluster's code.
 */
export function peerService(): ProtoGrpcType['cei']['v1']['Peer'] {
  const definition = protoLoader.loadSync('cei/v1/peer.proto', LOADER_OPTIONS);
  return (grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType).cei.v1.Peer;
}

/**
 * Channel options of a cluster link (src/cluster/transport-grpc.ts): above all no transparent
 * retries, for which grpc-js would keep every message of the long call and trim that buffer per message.
 */
export const LINK_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.enable_retries': 0,
  'grpc.use_local_subchannel_pool': 1,
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
};

export function peerClient(address: string): PeerClient {
  const Peer = peerService();
  return new Peer(address, grpc.credentials.createInsecure(), LINK_CHANNEL_OPTIONS);
}
