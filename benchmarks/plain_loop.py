"""A plain PyTorch training loop, the yardstick of ``regexp train``'s ``fit`` (``make bench``).

Digits, standard scaling, a 64-40-20-10 ReLU MLP, ``torch.optim.Adam`` with its defaults
(lr 1e-3), minibatches of 32 from a fresh permutation each epoch, 200 epochs, one thread;
no penalty and no validation. The training rows are those of regexp's default split
(stratified train/val/test = 60/20/20 with ``random_state=0``, as
``regexp.data.prepare.split_indices``). Prints the training seconds as JSON.

    python benchmarks/plain_loop.py
"""

import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

torch.set_num_threads(1)
x, y = load_digits(return_X_y=True)
rows = np.arange(len(y))
rest, _ = train_test_split(rows, test_size=0.2, random_state=0, stratify=y)
train, _ = train_test_split(rest, test_size=0.25, random_state=0, stratify=y[rest])
train = np.sort(train)
scaler = StandardScaler().fit(x[train])
x_train = torch.tensor(scaler.transform(x[train]), dtype=torch.float32)
y_train = torch.tensor(y[train])

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 40), nn.ReLU(), nn.Linear(40, 20), nn.ReLU(), nn.Linear(20, 10))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

start, cpu = time.perf_counter(), time.process_time()
for _ in range(200):
    perm = torch.randperm(len(y_train))
    for i in range(0, len(y_train), 32):
        idx = perm[i : i + 32]
        loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu

with torch.no_grad():
    accuracy = (model(x_train).argmax(1) == y_train).float().mean().item()
print(json.dumps({"seconds": seconds, "cpu": cpu, "rows": len(y_train), "accuracy": accuracy}))
