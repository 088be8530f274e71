"""Helper process for :class:`espeak.EspeakLibrary` (stdlib only).

Run as ``python _espeak_server.py LIBRARY DATA_PATH`` (by file path, so that
importing it imports nothing heavy).  It loads
libespeak-ng, initializes it and then, for each request line on stdin (JSON
``{"text", "voice", "rate", "pitch", "seed"}``), forks a child that synthesizes the
utterance.  The server itself never synthesizes, so each child starts from the
same pristine library state: libespeak-ng keeps static state across
utterances (e.g. its pitch-flutter phase), which would otherwise make an
utterance depend on what was spoken before it.  Forking this small process is
also much cheaper than forking a caller that has torch loaded.

Protocol, stdout: a JSON line ``{"sample_rate", "version"}`` (or
``{"error"}``) after start-up, then per request an 8-byte little-endian length
and a payload: ``K`` + int16 little-endian samples, or ``E`` + an error message.
"""

import ctypes
import json
import os
import signal
import struct
import sys

# speak_lib.h
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_DONT_EXIT = 0x8000
POS_CHARACTER = 1
CHARS_UTF8 = 1
RATE = 1
PITCH = 3

CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


def load(library_path, data_path):
    lib = ctypes.CDLL(library_path)
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
        ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
    lib.espeak_Info.restype = ctypes.c_char_p
    if hasattr(lib, "espeak_ng_SetRandSeed"):  # eSpeak NG >= 1.52
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
    sr = lib.espeak_Initialize(
        AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), INITIALIZE_DONT_EXIT
    )
    if sr <= 0:
        raise RuntimeError(f"espeak_Initialize failed with data path {data_path}")
    return lib, sr


def synthesize(lib, request, chunks):
    """Runs in the forked child; returns the payload."""
    # Some voices add noise (e.g. the breath of f2, f3, f5) from libc rand();
    # seed it, and eSpeak's own generator where it has one, per utterance.
    seed = int(request.get("seed", 0)) & 0x7FFFFFFF
    ctypes.CDLL(None).srand(ctypes.c_uint(seed))
    if hasattr(lib, "espeak_ng_SetRandSeed"):
        lib.espeak_ng_SetRandSeed(seed)
    if lib.espeak_SetVoiceByName(request["voice"].encode()) != 0:
        return b"E" + f"unknown voice {request['voice']!r}".encode()
    lib.espeak_SetParameter(RATE, int(request["rate"]), 0)
    lib.espeak_SetParameter(PITCH, int(request["pitch"]), 0)
    text = request["text"].encode("utf-8")
    buf = ctypes.create_string_buffer(text)
    err = lib.espeak_Synth(buf, len(text) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
    if err != 0:
        return b"E" + f"espeak_Synth returned {err}".encode()
    lib.espeak_Synchronize()
    data = b"".join(chunks)
    if sys.byteorder != "little":
        import array

        a = array.array("h", data)
        a.byteswap()
        data = a.tobytes()
    return b"K" + data


def handle(lib, line, chunks, out):
    request = json.loads(line)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(read_fd)
            try:
                payload = synthesize(lib, request, chunks)
            except BaseException as e:
                payload = b"E" + f"{type(e).__name__}: {e}".encode()
            view = memoryview(payload)
            while view:
                view = view[os.write(write_fd, view):]
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        payload = f.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        payload = b"E" + f"crashed ({signal.Signals(os.WTERMSIG(status)).name})".encode()
    elif not payload or os.waitstatus_to_exitcode(status) != 0:
        payload = b"E" + b"synthesis child failed without output"
    out.write(struct.pack("<Q", len(payload)))
    out.write(payload)
    out.flush()


def main(argv):
    out = sys.stdout.buffer
    chunks = []

    def collect(wav, numsamples, events):
        if wav and numsamples > 0:
            chunks.append(ctypes.string_at(wav, 2 * numsamples))
        return 0

    try:
        lib, sr = load(argv[1], argv[2])
        callback = CALLBACK(collect)
        lib.espeak_SetSynthCallback(callback)
        version = lib.espeak_Info(None).decode()
    except Exception as e:
        out.write((json.dumps({"error": f"{type(e).__name__}: {e}"}) + "\n").encode())
        out.flush()
        return 1
    out.write((json.dumps({"sample_rate": sr, "version": version}) + "\n").encode())
    out.flush()
    for line in sys.stdin.buffer:
        if line.strip():
            handle(lib, line, chunks, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
