//! The ICE-lite agent driven by a scripted full agent (a browser) on a
//! fake clock: every check is built here byte by byte with uturn-stun, and
//! every answer is parsed and verified as the browser would.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uturn_ice::{
    ufrag_of, CandidateOrigin, CheckError, Credentials, Event, IceLite, Pair, State,
    CONSENT_TIMEOUT,
};
use uturn_stun::{
    rfc5769, Attribute, AttributeType, Class, Message, MessageBuilder, Method, TransactionId,
};

const LOCAL_UFRAG: &str = "uTuRn8zQ";
const LOCAL_PWD: &str = "s3cretPassw0rdForUturn+/";
const REMOTE_UFRAG: &str = "Br0w";
const REMOTE_PWD: &str = "browserPasswordIsLong+/";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn pair(remote: &str) -> Pair {
    Pair {
        local: addr("192.0.2.10:3478"),
        remote: addr(remote),
    }
}

/// What the browser puts into a check, and what it can get wrong.
#[derive(Clone)]
struct Check {
    tid: TransactionId,
    username: Option<String>,
    key: Option<String>,
    priority: Option<u32>,
    use_candidate: bool,
    controlled: bool,
    fingerprint: bool,
    extra: Vec<(u16, Vec<u8>)>,
}

impl Check {
    fn new(tid: u8) -> Check {
        Check {
            tid: TransactionId([tid; 12]),
            username: Some(format!("{LOCAL_UFRAG}:{REMOTE_UFRAG}")),
            key: Some(LOCAL_PWD.to_owned()),
            priority: Some(1_853_824_767),
            use_candidate: false,
            controlled: false,
            fingerprint: true,
            extra: Vec::new(),
        }
    }

    fn nominating(tid: u8) -> Check {
        Check {
            use_candidate: true,
            ..Check::new(tid)
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut b = MessageBuilder::new(&mut out, Class::Request, Method::BINDING, self.tid);
        if let Some(u) = &self.username {
            b.add(&Attribute::Username(u)).unwrap();
        }
        for (typ, value) in &self.extra {
            b.add_raw(AttributeType(*typ), value).unwrap();
        }
        if let Some(p) = self.priority {
            b.add(&Attribute::Priority(p)).unwrap();
        }
        if self.controlled {
            b.add(&Attribute::IceControlled(0x0102_0304_0506_0708))
                .unwrap();
        } else {
            b.add(&Attribute::IceControlling(0x1112_1314_1516_1718))
                .unwrap();
        }
        if self.use_candidate {
            b.add(&Attribute::UseCandidate).unwrap();
        }
        if let Some(k) = &self.key {
            b.message_integrity(k.as_bytes()).unwrap();
        }
        if self.fingerprint {
            b.fingerprint().unwrap();
        }
        b.finish();
        out
    }
}

/// The agent plus a fake clock.
struct Harness {
    agent: IceLite,
    start: Instant,
    buf: Vec<u8>,
}

/// One answer as the browser sees it.
#[derive(Debug)]
struct Answer {
    bytes: Vec<u8>,
    from: SocketAddr,
    to: SocketAddr,
}

impl Answer {
    fn msg(&self) -> Message<'_> {
        Message::parse(&self.bytes).expect("answer parses")
    }

    fn attr(&self, typ: AttributeType) -> Option<Attribute<'_>> {
        let msg = self.msg();
        let tid = msg.transaction_id();
        msg.attribute(typ)
            .map(|raw| Attribute::decode(raw, &tid).unwrap())
    }

    fn error_code(&self) -> Option<u16> {
        match self.attr(AttributeType::ERROR_CODE) {
            Some(Attribute::ErrorCode { code, .. }) => Some(code),
            _ => None,
        }
    }

    /// Every answer carries a valid FINGERPRINT and goes back on the pair.
    fn check_common(&self, pair: Pair, tid: TransactionId) {
        let msg = self.msg();
        assert_eq!(msg.method(), Method::BINDING);
        assert_eq!(msg.transaction_id(), tid);
        msg.check_fingerprint().expect("FINGERPRINT valid");
        assert_eq!(self.from, pair.local);
        assert_eq!(self.to, pair.remote);
        assert!(
            msg.attribute(AttributeType::USERNAME).is_none(),
            "RFC 8489 §9.1.3: no USERNAME in answers"
        );
    }

    fn assert_success(&self, pair: Pair, tid: TransactionId) {
        self.check_common(pair, tid);
        assert_eq!(
            self.msg().class(),
            Class::Success,
            "{:?}",
            self.error_code()
        );
        assert_eq!(
            self.attr(AttributeType::XOR_MAPPED_ADDRESS),
            Some(Attribute::XorMappedAddress(pair.remote))
        );
        self.msg()
            .check_integrity(LOCAL_PWD.as_bytes())
            .expect("success is signed with the local password");
    }

    fn assert_error(&self, pair: Pair, tid: TransactionId, code: u16, signed: bool) {
        self.check_common(pair, tid);
        assert_eq!(self.msg().class(), Class::Error);
        assert_eq!(self.error_code(), Some(code));
        if signed {
            self.msg()
                .check_integrity(LOCAL_PWD.as_bytes())
                .expect("error to an authenticated request is signed");
        } else {
            assert!(
                self.msg()
                    .attribute(AttributeType::MESSAGE_INTEGRITY)
                    .is_none(),
                "RFC 8489 §9.1.3: no MESSAGE-INTEGRITY when authentication failed"
            );
        }
    }
}

impl Harness {
    fn new() -> Harness {
        let start = Instant::now();
        let agent = IceLite::new(
            start,
            Credentials::new(LOCAL_UFRAG, LOCAL_PWD).unwrap(),
            Credentials::new(REMOTE_UFRAG, REMOTE_PWD).unwrap(),
        );
        Harness {
            agent,
            start,
            buf: Vec::new(),
        }
    }

    fn at(&self, secs: f64) -> Instant {
        self.start + Duration::from_secs_f64(secs)
    }

    /// Sends `bytes` at `t` seconds and returns every answer.
    fn send_raw(
        &mut self,
        t: f64,
        pair: Pair,
        bytes: &[u8],
    ) -> (Result<(), CheckError>, Vec<Answer>) {
        let now = self.at(t);
        let result = self.agent.handle_datagram(now, pair, bytes);
        (result, self.drain())
    }

    /// Sends `check` at `t` seconds and returns its single answer, if any.
    fn send(&mut self, t: f64, pair: Pair, check: &Check) -> Option<Answer> {
        let (_, mut answers) = self.send_raw(t, pair, &check.bytes());
        assert!(answers.len() <= 1, "{answers:?}");
        answers.pop()
    }

    fn drain(&mut self) -> Vec<Answer> {
        let mut out = Vec::new();
        while let Some(t) = self.agent.poll_transmit(&mut self.buf) {
            assert_eq!(t.len, self.buf.len());
            out.push(Answer {
                bytes: self.buf.clone(),
                from: t.source,
                to: t.destination,
            });
        }
        out
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.agent.poll_event()).collect()
    }

    /// Fires the timer at `t` seconds.
    fn tick(&mut self, t: f64) {
        let now = self.at(t);
        self.agent.handle_timeout(now);
    }
}

#[test]
fn valid_check_gets_a_signed_success_with_the_mapped_address() {
    let mut h = Harness::new();
    let p = pair("198.51.100.7:50000");
    let check = Check::new(1);
    let answer = h.send(0.1, p, &check).expect("answered");
    answer.assert_success(p, check.tid);
    // Answered, but not nominated: nothing selected yet.
    assert!(h.events().is_empty());
    assert_eq!(h.agent.state(), State::Checking);
    assert_eq!(h.agent.selected(), None);
    assert_eq!(h.agent.last_consent(), None);
    assert_eq!(h.agent.stats().successes, 1);
}

#[test]
fn ipv6_peer_gets_its_ipv6_mapped_address() {
    let mut h = Harness::new();
    let p = Pair {
        local: addr("[2001:db8::10]:3478"),
        remote: addr("[2001:db8:1234::7]:50001"),
    };
    let check = Check::nominating(2);
    h.send(0.0, p, &check)
        .expect("answered")
        .assert_success(p, check.tid);
    assert_eq!(h.events(), vec![Event::Selected(p), Event::Connected]);
}

#[test]
fn check_from_an_unknown_address_is_a_peer_reflexive_candidate() {
    let mut h = Harness::new();
    h.agent
        .add_remote_candidate(addr("10.0.0.7:50000"), 2_130_706_431);
    let p = pair("198.51.100.7:50000");
    let mut check = Check::new(1);
    check.priority = Some(1_845_501_695);
    h.send(0.0, p, &check).unwrap().assert_success(p, check.tid);
    // The same address again is not listed twice.
    h.send(1.0, p, &Check::new(2))
        .unwrap()
        .assert_success(p, TransactionId([2; 12]));
    let remotes = h.agent.remote_candidates();
    assert_eq!(remotes.len(), 2);
    assert_eq!(remotes[0].origin, CandidateOrigin::Signalled);
    assert_eq!(remotes[1].address, p.remote);
    assert_eq!(remotes[1].origin, CandidateOrigin::PeerReflexive);
    assert_eq!(remotes[1].priority, 1_845_501_695);
}

#[test]
fn use_candidate_selects_the_pair_and_connects() {
    let mut h = Harness::new();
    let p = pair("198.51.100.7:50000");
    h.send(0.2, p, &Check::new(1)).unwrap();
    let check = Check::nominating(2);
    h.send(0.4, p, &check).unwrap().assert_success(p, check.tid);
    assert_eq!(h.events(), vec![Event::Selected(p), Event::Connected]);
    assert_eq!(h.agent.state(), State::Connected);
    assert_eq!(h.agent.selected(), Some(p));
    assert_eq!(h.agent.last_consent(), Some(h.at(0.4)));
    // Nominating the selected pair again changes nothing.
    h.send(0.6, p, &Check::nominating(3)).unwrap();
    assert!(h.events().is_empty());
}

#[test]
fn later_nomination_switches_the_selected_pair() {
    let mut h = Harness::new();
    let first = pair("198.51.100.7:50000");
    let second = Pair {
        local: addr("192.0.2.11:3478"),
        remote: addr("203.0.113.44:61000"),
    };
    h.send(0.0, first, &Check::nominating(1)).unwrap();
    assert_eq!(h.events(), vec![Event::Selected(first), Event::Connected]);
    // A check on another pair without USE-CANDIDATE does not switch.
    h.send(1.0, second, &Check::new(2))
        .unwrap()
        .assert_success(second, TransactionId([2; 12]));
    assert!(h.events().is_empty());
    assert_eq!(h.agent.selected(), Some(first));
    let check = Check::nominating(3);
    h.send(2.0, second, &check)
        .unwrap()
        .assert_success(second, check.tid);
    assert_eq!(
        h.events(),
        vec![Event::SelectedChanged {
            previous: first,
            selected: second
        }]
    );
    assert_eq!(h.agent.selected(), Some(second));
    assert_eq!(h.agent.last_consent(), Some(h.at(2.0)));
    // And back.
    h.send(3.0, first, &Check::nominating(4)).unwrap();
    assert_eq!(
        h.events(),
        vec![Event::SelectedChanged {
            previous: second,
            selected: first
        }]
    );
}

#[test]
fn wrong_password_is_401_unsigned() {
    let mut h = Harness::new();
    let p = pair("198.51.100.7:50000");
    let mut check = Check::nominating(1);
    check.key = Some(REMOTE_PWD.to_owned()); // the browser's own password: wrong key
    let (result, answers) = h.send_raw(0.0, p, &check.bytes());
    assert_eq!(result, Err(CheckError::IntegrityMismatch));
    answers[0].assert_error(p, check.tid, 401, false);
    assert!(h.events().is_empty(), "a rejected check nominates nothing");
    assert_eq!(h.agent.selected(), None);
    assert!(h.agent.remote_candidates().is_empty());
    assert_eq!(h.agent.stats().unauthorized, 1);
}

#[test]
fn wrong_ufrag_is_401() {
    // RFC 8489 §9.1.3: a USERNAME that is not valid gets 401 (the request
    // reached this agent, so answering is right; a ufrag that matches no
    // session at all never reaches an agent).
    let mut h = Harness::new();
    let p = pair("198.51.100.7:50000");
    for (i, username) in [
        format!("{LOCAL_UFRAG}x:{REMOTE_UFRAG}"),
        format!("{LOCAL_UFRAG}:{REMOTE_UFRAG}x"),
        format!("{LOCAL_UFRAG}:old1"),
        format!("{REMOTE_UFRAG}:{LOCAL_UFRAG}"),
        LOCAL_UFRAG.to_owned(),
        format!("{LOCAL_UFRAG};{REMOTE_UFRAG}"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut check = Check::nominating(i as u8);
        check.username = Some(username.clone());
        let (result, answers) = h.send_raw(0.0, p, &check.bytes());
        assert_eq!(result, Err(CheckError::WrongUsername), "{username}");
        answers[0].assert_error(p, check.tid, 401, false);
    }
    assert!(h.events().is_empty());
}

#[test]
fn missing_fingerprint_is_400() {
    let mut h = Harness::new();
    let p = pair("198.51.100.7:50000");
    let mut check = Check::nominating(1);
    check.fingerprint = false;
    let (result, answers) = h.send_raw(0.0, p, &check.bytes());
    assert_eq!(result, Err(CheckError::MissingFingerprint));
    answers[0].assert_error(p, check.tid, 400, false);
    assert!(h.events().is_empty());
}

#[test]
fn wrong_fingerprint_is_dropped_silently() {
    // RFC 8489 §7.3: a failed FINGERPRINT check means "not STUN after all".
    let mut h = Harness::new();
    let p = pair("198.51.100.7:50000");
    let mut bytes = Check::nominating(1).bytes();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let (result, answers) = h.send_raw(0.0, p, &bytes);
    assert_eq!(result, Err(CheckError::BadFingerprint));
    assert!(answers.is_empty());
    assert!(h.events().is_empty());
}

#[test]
fn missing_username_or_integrity_is_400() {
    let mut h = Harness::new();
    let p = pair("198.51.100.7:50000");
    let mut no_user = Check::new(1);
    no_user.username = None;
    let mut no_mi = Check::new(2);
    no_mi.key = None;
    for check in [no_user, no_mi] {
        let (result, answers) = h.send_raw(0.0, p, &check.bytes());
        assert_eq!(result, Err(CheckError::MissingCredentials));
        answers[0].assert_error(p, check.tid, 400, false);
    }
}

#[test]
fn missing_priority_is_400_signed() {
    let mut h = Harness::new();
    let p = pair("198.51.100.7:50000");
    let mut check = Check::nominating(1);
    check.priority = None;
    let (result, answers) = h.send_raw(0.0, p, &check.bytes());
    assert!(matches!(result, Err(CheckError::BadIceAttributes(_))));
    answers[0].assert_error(p, check.tid, 400, true);
    assert!(h.events().is_empty());
}

#[test]
fn unknown_comprehension_required_attribute_is_420_listing_it() {
    let mut h = Harness::new();
    let p = pair("198.51.100.7:50000");
    let mut check = Check::nominating(1);
    check.extra = vec![(0x0031, vec![1, 2, 3, 4]), (0xC057, vec![0, 1, 0, 10])];
    let (result, answers) = h.send_raw(0.0, p, &check.bytes());
    assert_eq!(result, Err(CheckError::UnknownAttributes));
    answers[0].assert_error(p, check.tid, 420, true);
    match answers[0].attr(AttributeType::UNKNOWN_ATTRIBUTES) {
        Some(Attribute::UnknownAttributes(list)) => {
            assert_eq!(list.iter().collect::<Vec<_>>(), vec![AttributeType(0x0031)])
        }
        other => panic!("no UNKNOWN-ATTRIBUTES: {other:?}"),
    }
    assert!(h.events().is_empty());
}

#[test]
fn comprehension_optional_extras_are_ignored() {
    // Chrome adds GOOG-NETWORK-INFO (0xC057) to its checks.
    let mut h = Harness::new();
    let p = pair("198.51.100.7:50000");
    let mut check = Check::nominating(1);
    check.extra = vec![(0xC057, vec![0, 1, 0, 10])];
    h.send(0.0, p, &check).unwrap().assert_success(p, check.tid);
    assert_eq!(h.events(), vec![Event::Selected(p), Event::Connected]);
}

#[test]
fn controlled_peer_gets_487_and_nominates_nothing() {
    // RFC 8445 §7.3.1.1: both sides controlled; a lite agent keeps its
    // role whatever the tie-breaker, so the full agent must switch.
    let mut h = Harness::new();
    let p = pair("198.51.100.7:50000");
    let mut check = Check::nominating(1);
    check.controlled = true;
    let (result, answers) = h.send_raw(0.0, p, &check.bytes());
    assert_eq!(result, Err(CheckError::RoleConflict));
    answers[0].assert_error(p, check.tid, 487, true);
    assert!(h.events().is_empty());
    assert_eq!(h.agent.stats().role_conflicts, 1);
    // After switching to controlling, the same peer succeeds.
    h.send(0.1, p, &Check::nominating(2)).unwrap();
    assert_eq!(h.events(), vec![Event::Selected(p), Event::Connected]);
}

#[test]
fn rfc5769_sample_request_is_authenticated_and_gets_487() {
    // RFC 5769 §2.1 is a check to ufrag "evtj" from "h6vY", signed with
    // the short-term password of the vectors, from a controlled agent.
    let now = Instant::now();
    let mut agent = IceLite::new(
        now,
        Credentials::new("evtj", rfc5769::SHORT_TERM_PASSWORD).unwrap(),
        Credentials::new("h6vY", "remotePasswordRemotePassword").unwrap(),
    );
    let msg = Message::parse(rfc5769::SAMPLE_REQUEST).unwrap();
    assert_eq!(ufrag_of(&msg), Some("evtj"));
    let p = pair("192.0.2.1:32853");
    assert_eq!(
        agent.handle_message(now, p, &msg),
        Err(CheckError::RoleConflict)
    );
    let mut buf = Vec::new();
    let t = agent.poll_transmit(&mut buf).expect("answered");
    assert_eq!((t.source, t.destination), (p.local, p.remote));
    let answer = Message::parse(&buf).unwrap();
    assert_eq!(answer.class(), Class::Error);
    answer
        .check_integrity(rfc5769::SHORT_TERM_PASSWORD.as_bytes())
        .unwrap();
    answer.check_fingerprint().unwrap();
}

#[test]
fn retransmitted_request_is_answered_again_with_the_same_answer() {
    let mut h = Harness::new();
    let p = pair("198.51.100.7:50000");
    let bytes = Check::nominating(9).bytes();
    let (_, first) = h.send_raw(0.0, p, &bytes);
    let (_, again) = h.send_raw(0.5, p, &bytes);
    assert_eq!(first.len(), 1);
    assert_eq!(again.len(), 1);
    assert_eq!(first[0].bytes, again[0].bytes);
    first[0].assert_success(p, TransactionId([9; 12]));
    // The nomination is reported once.
    assert_eq!(h.events(), vec![Event::Selected(p), Event::Connected]);
    assert_eq!(h.agent.stats().successes, 2);
}

#[test]
fn consent_expires_at_exactly_30_s_without_checks() {
    let mut h = Harness::new();
    let p = pair("198.51.100.7:50000");
    h.send(2.0, p, &Check::nominating(1)).unwrap();
    h.events();
    let deadline = h.at(2.0) + CONSENT_TIMEOUT;
    assert_eq!(h.agent.poll_timeout(), Some(deadline));
    h.agent.handle_timeout(deadline - Duration::from_nanos(1));
    assert!(h.events().is_empty());
    assert_eq!(h.agent.state(), State::Connected);
    h.agent.handle_timeout(deadline);
    assert_eq!(h.events(), vec![Event::ConsentLost, Event::Closed]);
    assert_eq!(h.agent.state(), State::Closed);
    assert_eq!(h.agent.poll_timeout(), None);
    // Dead: checks are not answered any more, the timer stays quiet.
    let (result, answers) = h.send_raw(33.0, p, &Check::new(2).bytes());
    assert_eq!(result, Err(CheckError::Closed));
    assert!(answers.is_empty());
    h.tick(100.0);
    assert!(h.events().is_empty());
}

#[test]
fn consent_kept_by_checks_every_5_s() {
    let mut h = Harness::new();
    let p = pair("198.51.100.7:50000");
    h.send(0.0, p, &Check::nominating(1)).unwrap();
    h.events();
    // Ten minutes of consent checks, the timer fired whenever it asks.
    for i in 1..=120u32 {
        let t = f64::from(i) * 5.0;
        let tid = (i % 250) as u8 + 2;
        h.send(t, p, &Check::new(tid))
            .unwrap()
            .assert_success(p, TransactionId([tid; 12]));
        assert_eq!(h.agent.last_consent(), Some(h.at(t)));
        assert_eq!(h.agent.poll_timeout(), Some(h.at(t) + CONSENT_TIMEOUT));
        h.tick(t + 4.9);
        assert!(h.events().is_empty(), "alive at {t} s");
    }
    assert_eq!(h.agent.state(), State::Connected);
    // Then silence: 30 s after the last check it ends.
    h.tick(600.0 + 29.9);
    assert!(h.events().is_empty());
    h.tick(600.0 + 30.0);
    assert_eq!(h.events(), vec![Event::ConsentLost, Event::Closed]);
}

#[test]
fn checks_on_other_pairs_do_not_refresh_consent() {
    let mut h = Harness::new();
    let selected = pair("198.51.100.7:50000");
    let other = pair("198.51.100.7:50002");
    h.send(0.0, selected, &Check::nominating(1)).unwrap();
    h.events();
    for i in 1..=6u8 {
        h.send(f64::from(i) * 5.0, other, &Check::new(i + 1))
            .unwrap();
    }
    // A failed check on the selected pair does not count either.
    let mut bad = Check::new(50);
    bad.key = Some("not-the-password-at-all".to_owned());
    h.send(29.0, selected, &bad)
        .unwrap()
        .assert_error(selected, bad.tid, 401, false);
    assert_eq!(h.agent.last_consent(), Some(h.at(0.0)));
    h.tick(30.0);
    assert_eq!(h.events(), vec![Event::ConsentLost, Event::Closed]);
}

#[test]
fn session_without_nomination_ends_30_s_after_creation() {
    let mut h = Harness::new();
    let p = pair("198.51.100.7:50000");
    assert_eq!(h.agent.poll_timeout(), Some(h.at(0.0) + CONSENT_TIMEOUT));
    // Checks without USE-CANDIDATE keep nothing alive: nothing is selected.
    h.send(10.0, p, &Check::new(1)).unwrap();
    h.tick(29.0);
    assert!(h.events().is_empty());
    h.tick(30.0);
    assert_eq!(h.events(), vec![Event::ConsentLost, Event::Closed]);
}

#[test]
fn close_ends_the_session_and_drops_queued_answers() {
    let mut h = Harness::new();
    let p = pair("198.51.100.7:50000");
    h.agent
        .handle_datagram(h.at(0.0), p, &Check::nominating(1).bytes())
        .unwrap();
    h.agent.close();
    assert!(h.drain().is_empty());
    assert_eq!(
        h.events(),
        vec![Event::Selected(p), Event::Connected, Event::Closed]
    );
    h.agent.close();
    assert!(h.events().is_empty(), "Closed is reported once");
}

#[test]
fn indications_and_responses_are_not_answered() {
    let mut h = Harness::new();
    let p = pair("198.51.100.7:50000");
    for class in [Class::Indication, Class::Success, Class::Error] {
        let mut out = Vec::new();
        let mut b = MessageBuilder::new(&mut out, class, Method::BINDING, TransactionId([3; 12]));
        b.fingerprint().unwrap();
        b.finish();
        let (result, answers) = h.send_raw(0.0, p, &out);
        assert_eq!(result, Err(CheckError::NotBindingRequest));
        assert!(answers.is_empty());
    }
    assert_eq!(h.agent.stats().discarded, 3);
    assert_eq!(h.agent.stats().requests, 0);
}

#[test]
fn undrained_answers_are_bounded() {
    let mut h = Harness::new();
    let p = pair("198.51.100.7:50000");
    for i in 0..40u8 {
        h.agent
            .handle_datagram(h.at(0.0), p, &Check::new(i).bytes())
            .unwrap();
    }
    let answers = h.drain();
    assert!(answers.len() < 40);
    assert_eq!(answers.len() as u64 + h.agent.stats().transmits_dropped, 40);
    // The newest are kept.
    answers
        .last()
        .unwrap()
        .assert_success(p, TransactionId([39; 12]));
}

#[test]
fn routing_by_ufrag_finds_the_agent() {
    let h = Harness::new();
    let bytes = Check::new(1).bytes();
    let msg = Message::parse(&bytes).unwrap();
    assert_eq!(ufrag_of(&msg), Some(h.agent.local_credentials().ufrag()));
}

#[test]
fn garbage_never_panics_and_the_agent_survives() {
    let mut rng = StdRng::seed_from_u64(0x1ce_11fe);
    let mut h = Harness::new();
    let p = pair("198.51.100.7:50000");
    let valid = Check::nominating(7).bytes();
    let mut answered = 0u64;
    for round in 0..20_000u32 {
        let bytes: Vec<u8> = match round % 4 {
            // Random bytes of random length.
            0 => (0..rng.gen_range(0..200)).map(|_| rng.gen()).collect(),
            // A valid check with a few bytes flipped.
            1 => {
                // Distinct positions, so that two flips cannot cancel out.
                let mut b = valid.clone();
                let n = rng.gen_range(1..4);
                for i in rand::seq::index::sample(&mut rng, b.len(), n) {
                    b[i] ^= rng.gen::<u8>() | 1;
                }
                b
            }
            // A valid check cut short, with its length field fixed up.
            2 => {
                let mut b = valid[..rng.gen_range(0..valid.len())].to_vec();
                if b.len() >= 20 {
                    let len = (b.len() - 20) as u16;
                    b[2..4].copy_from_slice(&len.to_be_bytes());
                }
                b
            }
            // A well-framed Binding request with random attributes.
            _ => {
                let mut out = Vec::new();
                let mut b = MessageBuilder::new(
                    &mut out,
                    Class::Request,
                    Method::BINDING,
                    TransactionId(rng.gen()),
                );
                for _ in 0..rng.gen_range(0..6) {
                    let typ = *[0x0006, 0x0008, 0x0024, 0x0025, 0x8029, 0x802A, 0x8028]
                        .get(rng.gen_range(0..7))
                        .unwrap();
                    let value: Vec<u8> = (0..rng.gen_range(0..24)).map(|_| rng.gen()).collect();
                    b.add_raw(AttributeType(typ), &value).unwrap();
                }
                if rng.gen() {
                    b.message_integrity(LOCAL_PWD.as_bytes()).unwrap();
                }
                if rng.gen() {
                    b.fingerprint().unwrap();
                }
                b.finish();
                out
            }
        };
        let (_, answers) = h.send_raw(0.0, p, &bytes);
        for a in &answers {
            // Whatever came in, what goes out is a well-formed STUN answer.
            let msg = a.msg();
            assert_ne!(msg.class(), Class::Request);
            msg.check_fingerprint().unwrap();
            answered += 1;
        }
    }
    assert!(answered > 0, "some garbage deserves an answer");
    // Garbage selected nothing; the agent still works.
    assert!(h.events().is_empty());
    h.send(1.0, p, &Check::nominating(8)).unwrap();
    assert_eq!(h.events(), vec![Event::Selected(p), Event::Connected]);
}

#[test]
fn ice_restart_switches_credentials_and_keeps_media_until_renominated() {
    let mut h = Harness::new();
    let old = pair("198.51.100.7:50000");
    h.send(0.0, old, &Check::nominating(1)).unwrap();
    h.events();
    let new_local = Credentials::new("N3wL", "newLocalPasswordIsLong+").unwrap();
    let new_remote = Credentials::new("N3wR", "newRemotePasswordIsLong").unwrap();
    h.agent.restart(new_local.clone(), new_remote.clone());
    assert_eq!(h.agent.local_credentials(), &new_local);
    // The old credentials no longer authenticate.
    let stale = Check::new(2);
    h.send(1.0, old, &stale)
        .unwrap()
        .assert_error(old, stale.tid, 401, false);
    assert_eq!(h.agent.selected(), Some(old));
    // Checks with the new credentials keep consent on the selected pair...
    let mut check = Check::new(3);
    check.username = Some("N3wL:N3wR".to_owned());
    check.key = Some(new_local.pwd().to_owned());
    h.agent
        .handle_datagram(h.at(5.0), old, &check.bytes())
        .unwrap();
    assert_eq!(h.agent.last_consent(), Some(h.at(5.0)));
    // ...and a nomination on another pair moves media.
    let moved = pair("203.0.113.44:61000");
    check.tid = TransactionId([4; 12]);
    check.use_candidate = true;
    h.agent
        .handle_datagram(h.at(6.0), moved, &check.bytes())
        .unwrap();
    let answers = h.drain();
    let answer = Message::parse(&answers[1].bytes).unwrap();
    assert_eq!(answer.class(), Class::Success);
    answer.check_integrity(new_local.pwd().as_bytes()).unwrap();
    assert_eq!(
        h.events(),
        vec![Event::SelectedChanged {
            previous: old,
            selected: moved
        }]
    );
}
