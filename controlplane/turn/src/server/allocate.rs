//! Allocate (RFC 8656 §7.2) and the relay sockets it needs.
//!
//! The request is checked in the RFC's order: 5-tuple already allocated
//! (437), REQUESTED-TRANSPORT (400 missing, 442 not UDP), the forbidden
//! combinations of RESERVATION-TOKEN, EVEN-PORT, REQUESTED-ADDRESS-FAMILY and
//! ADDITIONAL-ADDRESS-FAMILY (400), the address family (440), the quota
//! (486), then a relay port: reserved (RESERVATION-TOKEN; 508 if unknown or
//! expired), an even one, an even one with the next one held for 30 s
//! (EVEN-PORT with R), or any (508 when none is free).
//!
//! The socket is bound by the dataplane: the server emits
//! [`RuleChange::OpenRelay`] and keeps a [`PendingAllocation`] until
//! [`Server::handle_relay_bound`] answers. A failed bind (the port is taken
//! outside our pool) is retried on another port, up to
//! [`MAX_BIND_ATTEMPTS`], then 508. Once every relay is bound the server
//! emits [`RuleChange::AddAllocation`] and only then queues the success
//! response, so the dataplane forwards before the client can send.
//!
//! ADDITIONAL-ADDRESS-FAMILY (IPv6) asks for a dual-stack allocation. When
//! only the IPv4 half can be had, the allocation succeeds for IPv4 and the
//! response says why IPv6 is missing with ADDRESS-ERROR-CODE (§7.2 step 9):
//! 440 when the relay has no IPv6 address, 508 when no IPv6 port is free or
//! none could be bound.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::{debug, warn};
use uturn_stun::attribute::{AddressFamily, Attribute, AttributeType, PROTOCOL_UDP};
use uturn_stun::message::Message;

use super::authenticate::Authenticated;
use super::response::{Reply, RequestError};
use super::{
    Server, TimerKey, MAX_BIND_ATTEMPTS, MAX_PENDING_ALLOCATIONS, RELAY_BIND_TIMEOUT,
    RESERVATION_LIFETIME,
};
use crate::allocation::Allocation;
use crate::ports::{ClaimError, IpFamily, Parity, ReservationToken};
use crate::{AllocationId, FiveTuple, RuleChange};

/// An Allocate waiting for its relay socket(s).
#[derive(Debug)]
pub(crate) struct PendingAllocation {
    five_tuple: FiveTuple,
    reply: Reply,
    username: String,
    lifetime: Duration,
    dont_fragment: bool,
    relays: Vec<PendingRelay>,
    /// Why the IPv6 half of a dual-stack request is missing (ADDRESS-ERROR-CODE).
    ipv6_error: Option<RequestError>,
    pub(crate) deadline: Instant,
}

#[derive(Debug, Clone, Copy)]
struct PendingRelay {
    addr: SocketAddr,
    /// The IPv6 half of a dual-stack request: optional, the allocation
    /// can succeed without it.
    additional: bool,
    bound: bool,
    attempts: u8,
    choice: PortChoice,
}

/// How a relay port was picked, which decides how to retry and release it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortChoice {
    Any,
    /// EVEN-PORT without R.
    Even,
    /// EVEN-PORT with R: this port and the next one were taken; the next
    /// one becomes a reservation when the allocation succeeds.
    Pair,
    /// RESERVATION-TOKEN: this exact port or nothing.
    Reserved,
}

/// The attributes of an Allocate request that matter here.
struct AllocateRequest {
    lifetime: Option<u32>,
    dont_fragment: bool,
    requested_family: Option<AddressFamily>,
    additional_family: Option<AddressFamily>,
    even_port: Option<bool>,
    token: Option<ReservationToken>,
}

impl AllocateRequest {
    fn parse(msg: &Message<'_>) -> Result<Self, RequestError> {
        let transport = match find(msg, AttributeType::REQUESTED_TRANSPORT)? {
            Some(Attribute::RequestedTransport(protocol)) => protocol,
            _ => return Err(RequestError::BadRequest("no REQUESTED-TRANSPORT")),
        };
        if transport != PROTOCOL_UDP {
            return Err(RequestError::UnsupportedTransport);
        }
        let request = AllocateRequest {
            lifetime: match find(msg, AttributeType::LIFETIME)? {
                Some(Attribute::Lifetime(secs)) => Some(secs),
                _ => None,
            },
            dont_fragment: find(msg, AttributeType::DONT_FRAGMENT)?.is_some(),
            requested_family: match find(msg, AttributeType::REQUESTED_ADDRESS_FAMILY)? {
                Some(Attribute::RequestedAddressFamily(family)) => Some(family),
                _ => None,
            },
            additional_family: match find(msg, AttributeType::ADDITIONAL_ADDRESS_FAMILY)? {
                Some(Attribute::AdditionalAddressFamily(family)) => Some(family),
                _ => None,
            },
            even_port: match find(msg, AttributeType::EVEN_PORT)? {
                Some(Attribute::EvenPort(reserve)) => Some(reserve),
                _ => None,
            },
            token: match find(msg, AttributeType::RESERVATION_TOKEN)? {
                Some(Attribute::ReservationToken(token)) => Some(ReservationToken(*token)),
                _ => None,
            },
        };
        // RFC 8656 §7.2: a token names a port whose family is already
        // fixed, so it goes with neither EVEN-PORT nor a family.
        if request.token.is_some()
            && (request.even_port.is_some() || request.requested_family.is_some())
        {
            return Err(RequestError::BadRequest(
                "RESERVATION-TOKEN with EVEN-PORT or REQUESTED-ADDRESS-FAMILY",
            ));
        }
        if request.requested_family.is_some() && request.additional_family.is_some() {
            return Err(RequestError::BadRequest(
                "REQUESTED-ADDRESS-FAMILY with ADDITIONAL-ADDRESS-FAMILY",
            ));
        }
        // ADDITIONAL-ADDRESS-FAMILY can only ask for IPv6 next to the
        // default IPv4 (RFC 8656 §18.11).
        if request.additional_family == Some(AddressFamily::V4) {
            return Err(RequestError::BadRequest(
                "ADDITIONAL-ADDRESS-FAMILY is not IPv6",
            ));
        }
        if request.token.is_some() && request.additional_family.is_some() {
            return Err(RequestError::BadRequest(
                "RESERVATION-TOKEN with ADDITIONAL-ADDRESS-FAMILY",
            ));
        }
        // §7.2 step 8: a reserved pair is one IP's ports; dual-stack has two IPs.
        if request.even_port == Some(true) && request.additional_family.is_some() {
            return Err(RequestError::BadRequest(
                "EVEN-PORT with R and ADDITIONAL-ADDRESS-FAMILY",
            ));
        }
        Ok(request)
    }
}

/// The first attribute of `typ`, decoded; a malformed one is 400.
pub(super) fn find<'a>(
    msg: &Message<'a>,
    typ: AttributeType,
) -> Result<Option<Attribute<'a>>, RequestError> {
    let tid = msg.transaction_id();
    msg.attribute(typ)
        .map(|raw| Attribute::decode(raw, &tid))
        .transpose()
        .map_err(|_| RequestError::BadRequest("malformed attribute"))
}

pub(super) fn ip_family(family: AddressFamily) -> IpFamily {
    match family {
        AddressFamily::V4 => IpFamily::V4,
        AddressFamily::V6 => IpFamily::V6,
    }
}

impl Server {
    pub(super) fn allocate(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &Message<'_>,
        auth: Authenticated,
        reply: Reply,
    ) -> Result<Option<Vec<u8>>, RequestError> {
        // Retransmissions of the request that created the allocation were
        // answered from the transaction cache before getting here.
        if self.allocation_on(&from).is_some() {
            return Err(RequestError::AllocationMismatch);
        }
        if let Some(pending) = self.pending.iter().find(|p| p.five_tuple == from) {
            return if pending.reply.tid == reply.tid {
                // A retransmission while the relay is being bound: the
                // answer is on its way.
                Ok(None)
            } else {
                Err(RequestError::AllocationMismatch)
            };
        }
        let request = AllocateRequest::parse(msg)?;

        let primary = request
            .requested_family
            .map(ip_family)
            .unwrap_or(IpFamily::V4);
        if request.token.is_none() && self.relay_ip(primary).is_none() {
            return Err(RequestError::AddressFamilyNotSupported);
        }
        let wants_ipv6_too = request.additional_family.is_some();
        let mut ipv6_error = (wants_ipv6_too && self.relay_ip(IpFamily::V6).is_none())
            .then_some(RequestError::AddressFamilyNotSupported);
        if self.pending.len() >= MAX_PENDING_ALLOCATIONS {
            return Err(RequestError::InsufficientCapacity(
                "too many allocations in progress",
            ));
        }

        self.shared
            .quota
            .acquire(&auth.username)
            .map_err(|_| RequestError::QuotaReached)?;
        let first = match self.take_port(now, primary, &request) {
            Ok(relay) => relay,
            Err(error) => {
                self.shared.quota.release(&auth.username);
                return Err(error);
            }
        };
        let mut relays = vec![first];
        // `ipv6_error` is None here only if the relay has an IPv6 address.
        if let (true, None, Some(ip)) = (wants_ipv6_too, ipv6_error, self.relay_ip(IpFamily::V6)) {
            let choice = if request.even_port.is_some() {
                PortChoice::Even
            } else {
                PortChoice::Any
            };
            match self.acquire_port(IpFamily::V6, choice) {
                Some(port) => relays.push(PendingRelay {
                    addr: SocketAddr::new(ip, port),
                    additional: true,
                    bound: false,
                    attempts: 0,
                    choice,
                }),
                None => ipv6_error = Some(RequestError::InsufficientCapacity("no IPv6 relay port")),
            }
        }

        let deadline = now + RELAY_BIND_TIMEOUT;
        for relay in &relays {
            self.emit(RuleChange::OpenRelay {
                relay: relay.addr,
                dont_fragment: request.dont_fragment,
            });
        }
        debug!(
            client = %from.client, user = %auth.username,
            relays = ?relays.iter().map(|r| r.addr).collect::<Vec<_>>(), "allocate: binding relay"
        );
        self.pending.push(PendingAllocation {
            five_tuple: from,
            reply,
            username: auth.username,
            lifetime: self.granted_lifetime(request.lifetime),
            dont_fragment: request.dont_fragment,
            relays,
            ipv6_error,
            deadline,
        });
        Ok(None)
    }

    /// Takes the relay port an Allocate asks for (its one or first family)
    /// from the shared pool.
    fn take_port(
        &mut self,
        now: Instant,
        primary: IpFamily,
        request: &AllocateRequest,
    ) -> Result<PendingRelay, RequestError> {
        let (family, port, choice) = if let Some(token) = request.token {
            let (family, port) = self.shared.ports.claim(token, now).map_err(|e| match e {
                ClaimError::Expired => RequestError::InsufficientCapacity("reservation expired"),
                _ => RequestError::InsufficientCapacity("unknown reservation token"),
            })?;
            (family, port, PortChoice::Reserved)
        } else {
            let choice = match request.even_port {
                None => PortChoice::Any,
                Some(false) => PortChoice::Even,
                Some(true) => PortChoice::Pair,
            };
            if self.relay_ip(primary).is_none() {
                return Err(RequestError::AddressFamilyNotSupported);
            }
            let port =
                self.acquire_port(primary, choice)
                    .ok_or(RequestError::InsufficientCapacity(
                        "no relay port available",
                    ))?;
            (primary, port, choice)
        };
        let Some(ip) = self.relay_ip(family) else {
            // Only a token can get here (its family was not checked above):
            // a reserved port is a single port.
            self.shared.ports.release(family, port);
            return Err(RequestError::AddressFamilyNotSupported);
        };
        Ok(PendingRelay {
            addr: SocketAddr::new(ip, port),
            additional: false,
            bound: false,
            attempts: 0,
            choice,
        })
    }

    fn acquire_port(&self, family: IpFamily, choice: PortChoice) -> Option<u16> {
        let ports = &self.shared.ports;
        match choice {
            PortChoice::Any => ports.acquire(family, Parity::Any),
            PortChoice::Even => ports.acquire(family, Parity::Even),
            PortChoice::Pair => ports.acquire_pair(family),
            PortChoice::Reserved => None,
        }
    }

    fn release_port(&self, relay: &PendingRelay) {
        let family = crate::allocation::family_of(relay.addr.ip());
        let port = relay.addr.port();
        self.shared.ports.release(family, port);
        if relay.choice == PortChoice::Pair {
            // acquire_pair only returns ports below the range maximum.
            self.shared.ports.release(family, port.saturating_add(1));
        }
    }

    /// The dataplane's answer to an `OpenRelay`.
    pub(super) fn relay_bound(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        result: Result<(), std::io::Error>,
    ) {
        let found = self.pending.iter().enumerate().find_map(|(p, pending)| {
            pending
                .relays
                .iter()
                .position(|r| r.addr == relay && !r.bound)
                .map(|r| (p, r))
        });
        let Some((p, r)) = found else {
            // The Allocate gave up (timeout, shutdown) before the answer: a
            // socket opened for it is closed. A duplicate answer for a socket
            // in use (a driver bug) must not close it, hence the scans; this
            // path is rare, so they are acceptable.
            let in_use = self
                .pending
                .iter()
                .any(|p| p.relays.iter().any(|r| r.addr == relay))
                || self
                    .allocations
                    .values()
                    .any(|a| a.relays().any(|r| r == relay));
            if result.is_ok() && !in_use {
                debug!(%relay, "late relay bind answer: closing");
                self.emit(RuleChange::CloseRelay { relay });
            }
            return;
        };
        // `p` and `r` index `self.pending` and its relays as just found;
        // nothing below removes from either before the last use.
        match result {
            Ok(()) => {
                self.pending[p].relays[r].bound = true;
                if self.pending[p].relays.iter().all(|r| r.bound) {
                    let pending = self.pending.swap_remove(p);
                    self.complete(now, pending);
                }
            }
            Err(error) => {
                let failed = self.pending[p].relays[r];
                debug!(%relay, %error, attempt = failed.attempts + 1, "relay bind failed");
                let family = crate::allocation::family_of(relay.ip());
                // Take the next port before giving this one back, so the
                // random pick cannot land on the port that just failed.
                let retry = if failed.attempts + 1 < MAX_BIND_ATTEMPTS {
                    self.acquire_port(family, failed.choice)
                } else {
                    None
                };
                self.release_port(&failed);
                match retry {
                    Some(port) => {
                        let addr = SocketAddr::new(relay.ip(), port);
                        let slot = &mut self.pending[p].relays[r];
                        slot.addr = addr;
                        slot.attempts += 1;
                        let dont_fragment = self.pending[p].dont_fragment;
                        self.emit(RuleChange::OpenRelay {
                            relay: addr,
                            dont_fragment,
                        });
                    }
                    None if failed.additional => {
                        // Dual-stack: give up on IPv6 only, and say so in
                        // ADDRESS-ERROR-CODE (§7.2 step 9). Its port was
                        // released above.
                        let pending = &mut self.pending[p];
                        pending.relays.remove(r);
                        pending.ipv6_error = Some(RequestError::InsufficientCapacity(
                            "IPv6 relay could not be bound",
                        ));
                        if pending.relays.iter().all(|r| r.bound) {
                            let pending = self.pending.swap_remove(p);
                            self.complete(now, pending);
                        }
                    }
                    None => {
                        // Every attempt failed: the operator should hear of
                        // it (ports exhausted or held by other processes).
                        warn!(%relay, %error, "no relay port could be bound: answering 508");
                        let mut pending = self.pending.swap_remove(p);
                        // Already released above.
                        pending.relays.remove(r);
                        self.fail_pending(
                            now,
                            pending,
                            RequestError::InsufficientCapacity("relay port could not be bound"),
                        );
                    }
                }
            }
        }
    }

    /// Every relay of `pending` is bound: the allocation exists.
    fn complete(&mut self, now: Instant, pending: PendingAllocation) {
        let id = AllocationId(self.next_allocation);
        self.next_allocation += 1;
        let expires = now + pending.lifetime;

        let mut token = None;
        for relay in &pending.relays {
            if relay.choice == PortChoice::Pair && token.is_none() {
                let family = crate::allocation::family_of(relay.addr.ip());
                let until = now + RESERVATION_LIFETIME;
                // acquire_pair only returns ports below the range maximum.
                let next = relay.addr.port().saturating_add(1);
                let t = self.shared.ports.reserve(family, next, until);
                self.reservations.insert(t, until);
                self.timers.push(until, TimerKey::Reservation(t));
                token = Some(t);
            }
        }

        let advertised: Vec<SocketAddr> = pending
            .relays
            .iter()
            .map(|r| self.advertised(r.addr))
            .collect();
        let mut attributes: Vec<Attribute<'_>> = advertised
            .iter()
            .map(|a| Attribute::XorRelayedAddress(*a))
            .collect();
        if let Some(error) = pending.ipv6_error {
            attributes.push(Attribute::AddressErrorCode {
                family: AddressFamily::V6,
                code: error.code(),
                reason: error.reason(),
            });
        }
        let lifetime_secs = u32::try_from(pending.lifetime.as_secs()).unwrap_or(u32::MAX);
        attributes.push(Attribute::Lifetime(lifetime_secs));
        let token_bytes = token.map(|t| t.0);
        if let Some(bytes) = &token_bytes {
            attributes.push(Attribute::ReservationToken(bytes));
        }
        attributes.push(Attribute::XorMappedAddress(pending.five_tuple.client));
        let response = pending
            .reply
            .success(self.config.software.as_deref(), &attributes);

        let relays: Vec<SocketAddr> = pending.relays.iter().map(|r| r.addr).collect();
        self.emit(RuleChange::AddAllocation {
            allocation: id,
            client: pending.five_tuple,
            relays,
        });
        debug!(
            allocation = id.0, client = %pending.five_tuple.client, user = %pending.username,
            relayed = ?advertised, lifetime = lifetime_secs, "allocation created"
        );
        let allocation = Allocation::new(
            pending.five_tuple,
            pending.username.into_boxed_str(),
            pending.relays.iter().map(|r| r.addr),
            expires,
        );
        self.insert_allocation(id, allocation);
        self.timers.push(expires, TimerKey::Allocation(id));
        self.stats.allocations += 1;
        if let Some(bytes) = response {
            self.respond(now, pending.five_tuple, pending.reply.tid.0, bytes);
        }
    }

    /// Gives up on `pending`: closes what was bound, returns ports and
    /// quota, answers `error`.
    pub(super) fn fail_pending(
        &mut self,
        now: Instant,
        pending: PendingAllocation,
        error: RequestError,
    ) {
        debug!(client = %pending.five_tuple.client, %error, "allocate failed");
        let (five_tuple, reply) = (pending.five_tuple, pending.reply.clone());
        self.abandon_pending(pending);
        self.stats.error_responses += 1;
        if let Some(bytes) = reply.error(self.config.software.as_deref(), &error, &[]) {
            self.respond(now, five_tuple, reply.tid.0, bytes);
        }
    }

    /// Closes what `pending` bound and returns its ports and quota, without
    /// answering (shutdown).
    pub(super) fn abandon_pending(&mut self, pending: PendingAllocation) {
        for relay in &pending.relays {
            if relay.bound {
                self.emit(RuleChange::CloseRelay { relay: relay.addr });
            }
            self.release_port(relay);
        }
        self.shared.quota.release(&pending.username);
    }
}
