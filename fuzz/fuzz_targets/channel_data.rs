//! Any datagram through `ChannelData::parse`; what parses must be a
//! payload inside the datagram behind a header that re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uturn_stun::ChannelData;

fuzz_target!(|data: &[u8]| {
    let Ok(cd) = ChannelData::parse(data) else {
        return;
    };
    let len = u16::try_from(cd.payload().len()).expect("length came from a u16");
    assert_eq!(&ChannelData::header(cd.channel(), len)[..], &data[..4]);
    assert_eq!(cd.payload(), &data[4..4 + cd.payload().len()]);
    assert!(data.len() - 4 - cd.payload().len() <= 3);
});
