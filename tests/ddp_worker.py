"""`rnncli ARGS` as a torchrun worker that also records, on rank 0, a digest of every rank's
weights at the end of training (tests/test_distributed.py: parameters must agree on all ranks).

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_worker.py OUT.json train ...
"""

import hashlib
import json
import sys
from pathlib import Path

import torch.distributed as dist

from rnncli import cli
from rnncli.training.trainer import Trainer

OUT = Path(sys.argv[1])
_finish = Trainer._finish


def _digest(model) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def finish(self, stopped):
    digests = [None] * dist.get_world_size()
    dist.all_gather_object(digests, _digest(self.model))
    if dist.get_rank() == 0:
        OUT.write_text(json.dumps({"digests": digests, "step": self.state.step}))
    return _finish(self, stopped)


Trainer._finish = finish
sys.argv = ["rnncli", *sys.argv[2:]]
cli.main()
