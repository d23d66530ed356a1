"""Lesson 8's equivalent mutants: the changes to a solution that compute what it computes.

The author's self-test (``python -m autograder lint-lesson lesson8``, and
``python scripts/mutants.py``) changes every solution cell in one small way at a time and
requires every such *mutant* to fail an exercise, except those listed here, each with a
one-line reason (it computes what the solution computes, on every input the lesson
allows). Keys are (notebook, grade_id, line before, line after), lines as
``ast.unparse`` writes them (``python scripts/mutants.py --list`` prints them).
"""

from __future__ import annotations

from . import lesson

SQUARE = "(a - b) and (b - a) have the same square"
SQUEEZE_1 = "the tensor squeezed is always (n, 1): axis 1 is its last axis, the one of size 1"
UNSQUEEZE_1 = "the tensor unsqueezed is 1-d, so axis 1 and axis -1 are the same new last axis"
MASK_DTYPE = "a bool or integer mask times the float out.g is promoted to float: same values, same dtype"
RELU_AT_0 = ("differs only where the input is exactly 0, where relu has no derivative (0 and 1 are both "
             "subgradients); no input the checks or the lesson use is exactly 0, and neither choice is charged")
ZERO_D = "a 0-d tensor holds the same number as .item() gives; the check compares the numbers"
ABS_SWAP = "abs(a - b) equals abs(b - a): the same distance from 1"
LOSS_UNUSED = ("the backward pass starts from mse_grad: the value of the loss is never used "
               "(nothing is returned)")
EQUIVALENT: dict[tuple[str, str, str, str], str] = {
    ("01_matmul", "matmul_elementwise", "c = torch.zeros(ar, bc)", "c = torch.ones(ar, bc)"):
        "every entry of c is assigned (=) before c is returned, so its first values never show",
    ("01_matmul", "matmul_broadcast", "c = torch.zeros(ar, bc)", "c = torch.ones(ar, bc)"):
        "every row of c is assigned (=) before c is returned, so its first values never show",
    ("01_matmul", "matmul_broadcast", "c[i] = (a[i].unsqueeze(-1) * b).sum(0)",
     "c[i] = (a[i].unsqueeze(1) * b).sum(0)"): UNSQUEEZE_1,
    ("02_fully_connected", "get_data", "with gzip.open(MNIST_PATH, 'rb') as f:",
     "with gzip.open(MNIST_PATH) as f:"): "'rb' is gzip.open's default mode",
    ("02_fully_connected", "dims", "c = int(y_train.max()) + 1", "c = y_train.max() + 1"):
        "a one-element integer tensor is accepted for c on purpose: it is the count of classes",
    ("02_fully_connected", "mse", "return (output.squeeze(-1) - targ).pow(2).mean()",
     "return (targ - output.squeeze(-1)).pow(2).mean()"): SQUARE,
    ("02_fully_connected", "mse", "return (output.squeeze(-1) - targ).pow(2).mean()",
     "return (output.squeeze(1) - targ).pow(2).mean()"): SQUEEZE_1,
    ("03_backward", "mse_grad", "inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(-1) / inp.shape[0]",
     "inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(1) / inp.shape[0]"): UNSQUEEZE_1,
    ("03_backward", "mse_grad", "inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(-1) / inp.shape[0]",
     "inp.g = 2.0 * (inp.squeeze(1) - targ).unsqueeze(-1) / inp.shape[0]"): SQUEEZE_1,
    ("03_backward", "relu_grad", "inp.g = (inp > 0).float() * out.g",
     "inp.g = (inp > 0).long() * out.g"): MASK_DTYPE,
    ("03_backward", "relu_grad", "inp.g = (inp > 0).float() * out.g", "inp.g = (inp > 0) * out.g"): MASK_DTYPE,
    ("03_backward", "relu_grad", "inp.g = (inp > 0).float() * out.g",
     "inp.g = (inp >= 0).float() * out.g"): RELU_AT_0,
    ("03_backward", "forward_and_backward", "loss = mse(out, targ)", "pass"): LOSS_UNUSED,
    ("03_backward", "forward_and_backward", "loss = mse(out, targ)", "loss = mse(targ, out)"): LOSS_UNUSED,
    ("03_backward", "Relu", "self.inp.g = (self.inp > 0).float() * self.out.g",
     "self.inp.g = (self.inp > 0).long() * self.out.g"): MASK_DTYPE,
    ("03_backward", "Relu", "self.inp.g = (self.inp > 0).float() * self.out.g",
     "self.inp.g = (self.inp > 0) * self.out.g"): MASK_DTYPE,
    ("03_backward", "Relu", "self.inp.g = (self.inp > 0).float() * self.out.g",
     "self.inp.g = (self.inp >= 0).float() * self.out.g"): RELU_AT_0,
    ("03_backward", "Mse", "self.out = (inp.squeeze(-1) - targ).pow(2).mean()",
     "self.out = (targ - inp.squeeze(-1)).pow(2).mean()"): SQUARE,
    ("03_backward", "Mse", "self.out = (inp.squeeze(-1) - targ).pow(2).mean()",
     "self.out = (inp.squeeze(1) - targ).pow(2).mean()"): SQUEEZE_1,
    ("03_backward", "Mse",
     "self.inp.g = 2.0 * (self.inp.squeeze(-1) - self.targ).unsqueeze(-1) / self.inp.shape[0]",
     "self.inp.g = 2.0 * (self.inp.squeeze(-1) - self.targ).unsqueeze(1) / self.inp.shape[0]"): UNSQUEEZE_1,
    ("03_backward", "Mse",
     "self.inp.g = 2.0 * (self.inp.squeeze(-1) - self.targ).unsqueeze(-1) / self.inp.shape[0]",
     "self.inp.g = 2.0 * (self.inp.squeeze(1) - self.targ).unsqueeze(-1) / self.inp.shape[0]"): SQUEEZE_1,
    ("03_backward", "Relu_module", "inp.g = (inp > 0).float() * out.g",
     "inp.g = (inp > 0).long() * out.g"): MASK_DTYPE,
    ("03_backward", "Relu_module", "inp.g = (inp > 0).float() * out.g", "inp.g = (inp > 0) * out.g"): MASK_DTYPE,
    ("03_backward", "Relu_module", "inp.g = (inp > 0).float() * out.g",
     "inp.g = (inp >= 0).float() * out.g"): RELU_AT_0,
    ("03_backward", "Mse_module", "return (inp.squeeze(-1) - targ).pow(2).mean()",
     "return (targ - inp.squeeze(-1)).pow(2).mean()"): SQUARE,
    ("03_backward", "Mse_module", "return (inp.squeeze(-1) - targ).pow(2).mean()",
     "return (inp.squeeze(1) - targ).pow(2).mean()"): SQUEEZE_1,
    ("03_backward", "Mse_module", "inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(-1) / targ.shape[0]",
     "inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(1) / targ.shape[0]"): UNSQUEEZE_1,
    ("03_backward", "Mse_module", "inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(-1) / targ.shape[0]",
     "inp.g = 2.0 * (inp.squeeze(1) - targ).unsqueeze(-1) / targ.shape[0]"): SQUEEZE_1,
    ("03_backward", "Mse_module", "inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(-1) / targ.shape[0]",
     "inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(-1) / targ.shape[-1]"):
        "targ is 1-d, so its axis -1 is its axis 0",
    ("04_init_in_pytorch", "layer_stats", "stats.append((x.mean().item(), x.std().item()))",
     "stats.append((x.mean(), x.std().item()))"): ZERO_D,
    ("04_init_in_pytorch", "layer_stats", "stats.append((x.mean().item(), x.std().item()))",
     "stats.append((x.mean().item(), x.std()))"): ZERO_D,
    ("04_init_in_pytorch", "fraction_better", "default_layers, kaiming_layers = (conv_stack(), conv_stack())",
     "kaiming_layers, default_layers = (conv_stack(), conv_stack())"):
        "both stacks are fresh draws of the same default init: only which draws get re-initialised changes",
    ("04_init_in_pytorch", "fraction_better",
     "better += abs(kaiming_std_last - 1) < abs(default_std_last - 1)",
     "better += abs(kaiming_std_last - 1) <= abs(default_std_last - 1)"):
        "two stds computed from different random weights are equal with probability 0",
    ("04_init_in_pytorch", "fraction_better",
     "better += abs(kaiming_std_last - 1) < abs(default_std_last - 1)",
     "better += abs(1 - kaiming_std_last) < abs(default_std_last - 1)"): ABS_SWAP,
    ("04_init_in_pytorch", "fraction_better",
     "better += abs(kaiming_std_last - 1) < abs(default_std_last - 1)",
     "better += abs(kaiming_std_last - 1) < abs(1 - default_std_last)"): ABS_SWAP,
}


# The same for the mutants of --variables (a variable read replaced by another of its scope).
SAME_N = "inp is (n, 1) and targ is (n,): both have n rows"
RELU_OUT = "out is relu(inp), which is positive exactly where inp is"
EQUIVALENT_VARIABLES: dict[tuple[str, str, str, str], str] = {
    ("01_matmul", "matmul_loops", "for k in range(ac):", "for k in range(br):"):
        "the assert just above has made sure that ac == br",
    ("03_backward", "mse_grad", "inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(-1) / inp.shape[0]",
     "inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(-1) / targ.shape[0]"): SAME_N,
    ("03_backward", "relu_grad", "inp.g = (inp > 0).float() * out.g",
     "inp.g = (out > 0).float() * out.g"): RELU_OUT,
    ("03_backward", "forward_and_backward", "loss = mse(out, targ)", "loss = mse(targ, targ)"): LOSS_UNUSED,
    ("03_backward", "forward_and_backward", "loss = mse(out, targ)", "loss = mse(out, out)"): LOSS_UNUSED,
    ("03_backward", "Relu", "self.inp.g = (self.inp > 0).float() * self.out.g",
     "self.inp.g = (self.out > 0).float() * self.out.g"): RELU_OUT,
    ("03_backward", "Mse",
     "self.inp.g = 2.0 * (self.inp.squeeze(-1) - self.targ).unsqueeze(-1) / self.inp.shape[0]",
     "self.inp.g = 2.0 * (self.inp.squeeze(-1) - self.targ).unsqueeze(-1) / self.targ.shape[0]"): SAME_N,
    ("03_backward", "Relu_module", "inp.g = (inp > 0).float() * out.g",
     "inp.g = (out > 0).float() * out.g"): RELU_OUT,
    ("03_backward", "Mse_module", "inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(-1) / targ.shape[0]",
     "inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(-1) / inp.shape[0]"): SAME_N,
}


# 05_cross_entropy (kept in a block of its own)
TWO_D = "x is (rows, classes), 2-d: axis 1 is its last axis, -1"
EQUIVALENT.update({
    ("05_cross_entropy", "log_softmax", "return (x.exp() / x.exp().sum(-1, keepdim=True)).log()",
     "return (x.exp() / x.exp().sum(1, keepdim=True)).log()"): TWO_D,
    ("05_cross_entropy", "logsumexp", "m = x.max(-1, keepdim=True)[0]", "m = x.max(1, keepdim=True)[0]"): TWO_D,
    ("05_cross_entropy", "logsumexp", "return m.squeeze(-1) + (x - m).exp().sum(-1).log()",
     "return m.squeeze(1) + (x - m).exp().sum(-1).log()"): "m is (rows, 1): axis 1 is its last axis, of size 1",
    ("05_cross_entropy", "logsumexp", "return m.squeeze(-1) + (x - m).exp().sum(-1).log()",
     "return m.squeeze(-1) + (x - m).exp().sum(1).log()"): TWO_D,
    ("05_cross_entropy", "logsumexp", "return m.squeeze(-1) + (x - m).exp().sum(-1).log()",
     "return m.squeeze() + (x - m).exp().sum(-1).log()"):
        "m is (rows, 1); with one row squeeze() leaves a 0-d max, which the (1,) sum broadcasts back to (1,)",
    ("05_cross_entropy", "stable_log_softmax", "return x - logsumexp(x).unsqueeze(-1)",
     "return x - logsumexp(x).unsqueeze(1)"): "logsumexp(x) is 1-d, so axis 1 and axis -1 are the same new last axis",
    ("05_cross_entropy", "nll", "return -logp[range(target.shape[0]), target].mean()",
     "return -logp[range(target.shape[-1]), target].mean()"): "target is 1-d: its axis -1 is its axis 0",
    ("05_cross_entropy", "accuracy", "return (out.argmax(dim=1) == yb).float().mean()",
     "return (out.argmax(dim=-1) == yb).float().mean()"): "out is (rows, classes), 2-d: dim -1 is dim 1",
    ("05_cross_entropy", "fit", "losses.append(loss.item())", "losses.append(loss)"):
        "a list of one-element tensors holds the same losses as their .item(); fit's list may hold either",
})


lesson.equivalent_mutants.update(EQUIVALENT)
lesson.equivalent_variable_mutants.update(EQUIVALENT_VARIABLES)
