"""Sparse frame reads by seeking: a few frames spread over a long video (the MLLM's 12) without decoding it all.

Where a forward read is known to give the same frames, `VideoReader.get_frames` seeks instead: the presentation
order of every frame is read off the packets (their sorted timestamps, no decoding), so a frame is found by its
timestamp, never by arithmetic on a frame rate (robbery.mp4's timestamps step by 592 and 608 ticks). Each group of
wanted frames further apart than a keyframe interval costs one seek. Anything unusual (a packet without a
timestamp or dropped by an edit list, two with the same timestamp, a count that differs from the index, a decoded
frame whose timestamp is not in the list or whose size differs) raises `SeekUnsafe`: the caller reads forward.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import numpy as np

SEEK_MIN_SAVING = 32  # frames: seek only where it skips at least this many frames beyond a keyframe interval


class SeekUnsafe(Exception):
    """This file (or this read) is not one where seeking gives the same frames: read forward instead."""


@dataclass
class SeekIndex:
    pts: np.ndarray  # (n,) int64: the presentation timestamps in presentation order; frame i has pts[i]
    keyframes: np.ndarray  # (k,) int64: presentation indices of the keyframes, sorted
    gop: int  # the longest run of frames from one keyframe to the next

    def position(self, pts: int | None) -> int:
        """The presentation index of the frame with this timestamp (SeekUnsafe if no frame has it)."""
        i = int(np.searchsorted(self.pts, pts)) if pts is not None else len(self.pts)
        if i >= len(self.pts) or self.pts[i] != pts:
            raise SeekUnsafe(f"a decoded frame's timestamp {pts} is not in the packet index")
        return i

    def far(self, frame: int, start: int = 0) -> bool:
        """Is `frame` far enough past `start` that a seek decodes less than reading on?"""
        return frame - start > self.gop + SEEK_MIN_SAVING

    def groups(self, wanted: np.ndarray) -> list[np.ndarray]:
        """Sorted wanted indices split where reading forward would decode more than a seek would (one group:
        no seek is worth it)."""
        cut = np.flatnonzero(np.diff(wanted) > self.gop + SEEK_MIN_SAVING) + 1  # = far(next, previous)
        return np.split(wanted, cut)


def seek_index(container, stream, frames: int, tick=lambda: None) -> SeekIndex | None:
    """The presentation order of `stream`'s frames from its packets, or None where seeking is not safe. Memory:
    9 bytes a packet, and the scan stops once the packets outnumber the `frames` the container listed (the
    counts must agree anyway); `tick()` after each packet (the caller's stall watchdog)."""
    pts, keys = array("q"), bytearray()
    for packet in container.demux(stream):
        tick()
        if not packet.size:
            continue
        if packet.pts is None or packet.is_discard or packet.is_corrupt or len(pts) >= frames:
            return None
        pts.append(packet.pts)
        keys.append(packet.is_keyframe)
    pts_arr = np.frombuffer(pts, dtype=np.int64) if pts else np.empty(0, np.int64)
    order = np.argsort(pts_arr, kind="stable")
    pts_sorted = pts_arr[order]
    if len(pts_sorted) != frames or len(pts_sorted) < 2 or np.any(np.diff(pts_sorted) <= 0):
        return None
    key_pos = np.sort(np.flatnonzero(np.frombuffer(bytes(keys), dtype=np.uint8)[order]))
    if key_pos.size == 0 or key_pos[0] != 0:
        return None
    gop = int(np.diff(np.append(key_pos, len(pts_sorted))).max())
    return SeekIndex(pts_sorted, key_pos, gop)


def decode_groups(reader, groups: list[np.ndarray], index: SeekIndex, batch_size: int, tick, stop, to_rgb):
    """(indices, frames (B, H, W, 3) uint8) of each group: one seek to the keyframe before it, then decoding until
    every frame of the group is there, under `reader`'s limits and clock (`to_rgb(frame)`: its RGB conversion)."""
    size = (reader.info.width, reader.info.height)
    with reader._opened() as (container, stream):
        t0 = float(index.pts[0] * stream.time_base)
        for group in groups:
            want, got_idx, got = set(group.tolist()), [], []
            key = int(index.keyframes[np.searchsorted(index.keyframes, group[0], side="right") - 1])
            container.seek(int(index.pts[key]), stream=stream, backward=True)
            for packet in container.demux(stream):
                tick()
                if stop.is_set():
                    return
                for frame in packet.decode():
                    pos = index.position(frame.pts)
                    if (frame.width, frame.height) != size:
                        raise SeekUnsafe(
                            f"frame {pos} is {frame.width}x{frame.height}, the header says {size}"
                        )
                    reader._check(frame, pos, None, set())
                    if pos > group[-1] and want:
                        raise SeekUnsafe(f"the seek for frame {group[0]} landed past it")
                    if pos in want:
                        want.discard(pos)
                        reader.times_s[pos] = reader._time(frame, pos, t0)
                        got_idx.append(pos)
                        got.append(to_rgb(frame))
                    if len(got) >= batch_size or (got and not want):
                        order = np.argsort(got_idx)
                        yield np.asarray(got_idx)[order], np.stack([got[i] for i in order])
                        got_idx, got = [], []
                if not want:
                    break
            if want:
                raise SeekUnsafe(f"frames {sorted(want)[:3]} not found after seeking")
